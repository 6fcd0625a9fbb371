"""``gantool evaluate RUN``: parse, call :func:`translator.evaluate.evaluate_run`, print."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from translator.cli.runtime import device_option


@click.command("evaluate")
@click.argument("run", type=click.Path(path_type=Path))
@click.option("--checkpoint", type=int, default=None,
              help="Step of the checkpoint to evaluate (default: the latest).")
@click.option("--max-images", type=click.IntRange(min=1), default=None,
              help="Images per domain (translation; default: all test images) or samples "
                   "(generation; default: 500).")
@click.option("-o", "--out", type=click.Path(path_type=Path), default=None,
              help="Folder for grid.png and figures.json (default: RUN/eval/step-NNNNNNN).")
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True)
@device_option
@click.option("--seed", type=int, default=0, show_default=True,
              help="Noise seed of a generation run's samples.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def evaluate_command(run: Path, checkpoint: int | None, no_progress: bool,
                     **options: Any) -> None:
    """How good is a run? Figures and a grid from its checkpoint.

    \b
    Translation runs: every test image of both domains (or every 10th training image
    when the data has no test split) is translated and translated back. The grid shows
    real | translated | reconstructed; the figures are cycle L1 and identity L1 (0 is
    perfect, pixels scaled to [0, 1]). Generation runs: a grid of samples and their
    diversity. Runs on the digits data add a digit classifier's reading; plugins may
    add figures of their own.

    \b
    Examples:
      gantool evaluate runs/cyclegan-20261123-101500
      gantool evaluate runs/RUN --checkpoint 1000 --max-images 200 -o eval-1000
    """
    from translator.evaluate import EvalOptions, evaluate_run

    # --max-images, --out, --batch-size, --device and --seed are named after its fields.
    result = evaluate_run(run, checkpoint, EvalOptions(**options), progress=not no_progress)
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    counts = ", ".join(f"{c.label}: {result.images[c.name]}" for c in result.columns)
    click.echo(f"{result.model} at step {result.step}; images: {result.source} ({counts})")
    click.echo(result.table())
    click.echo(f"Wrote {result.grid} and {result.json_path}")


def add_commands(cli: click.Group) -> None:
    cli.add_command(evaluate_command)
