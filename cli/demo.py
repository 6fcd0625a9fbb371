"""``gantool demo``: the embedded end-to-end job."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("demo")
@click.option("--out", type=click.Path(path_type=Path), default=Path("demo-output"),
              show_default=True, help="Folder for everything the demo writes.")
@click.option("--steps", type=click.IntRange(min=1), default=240, show_default=True,
              help="Training steps (more steps, better night scenes).")
@click.option("--size", type=click.IntRange(min=16), default=64, show_default=True,
              help="Training resolution (a multiple of 4).")
def demo_command(out: Path, steps: int, size: int) -> None:
    """Train a CycleGAN on built-in day/night scenes, export it to ONNX and apply it.

    Needs no download and runs on a CPU in a few minutes.
    """
    from translator.demo import run_demo

    result = run_demo(out, steps=steps, size=size, log=lambda m: click.echo(m, err=True))
    click.echo("\nThe demo wrote:")
    click.echo(f"  {result.picture}    day scenes (left) and their night versions (right)")
    click.echo(f"  {result.run_dir}/samples/  grids during training: real | translated | back")
    click.echo(f"  {result.run_dir}/logs/losses.png  the losses of both generators and critics")
    click.echo(f"  {result.onnx_file}  the exported generator (gantool inspect {result.onnx_file})")
    click.echo(f"  {result.outputs}/  translated images, by the onnxruntime pipeline")
    click.echo(f"\nTry: gantool apply --model {result.onnx_file} YOUR_PHOTO.jpg")


def add_commands(cli: click.Group) -> None:
    cli.add_command(demo_command)
