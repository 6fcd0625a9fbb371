"""``gantool train MODEL``, ``gantool train --resume RUN`` and ``gantool sample``.

Each registered model is a subcommand of ``train`` whose flags are the shared training
flags plus the fields of the model's config dataclass, so a plugin adds flags without
touching the CLI.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from translator.config import TrainConfig, click_options


def _train_options(spec) -> list[click.Option]:
    shared = click_options(TrainConfig, skip={"model"})
    for option in shared:
        if option.name in spec.train_defaults:
            option.default = spec.train_defaults[option.name]
    shared_names = {o.name for o in shared}
    own = [o for o in click_options(spec.config) if o.name not in shared_names]
    return shared + own


def _report(result) -> None:
    from translator.device import distributed_from_env

    if not distributed_from_env().is_main:
        return  # under torchrun, rank 0 alone reports (and alone wrote the folder)
    run = result.run_dir
    click.echo(f"Run folder: {run}")
    samples = sorted((run / "samples").glob("step-*.png"))
    if samples:
        click.echo(f"  samples:  {samples[-1]}")
    if (run / "logs" / "losses.png").is_file():
        click.echo(f"  losses:   {run / 'logs' / 'losses.png'}")
    if any((run / "logs").glob("events.out.tfevents.*")):
        click.echo(f"  tensorboard --logdir {run / 'logs'}")
    click.echo(f"  checkpoints: {run / 'checkpoints'}")


def _make_model_command(spec) -> click.Command:
    def callback(**values):
        from translator.config import config_from_dict
        from translator.training import train

        train_names = {f.name for f in dataclasses.fields(TrainConfig)}
        shared = {k: v for k, v in values.items() if k in train_names}
        if shared["data"] is None:
            del shared["data"]  # only --resume may leave it out; checked below
        train_cfg = config_from_dict(TrainConfig, shared)
        train_cfg = dataclasses.replace(train_cfg, model=spec.name)
        model_values = {f.name: values[f.name] for f in dataclasses.fields(spec.config)
                        if f.name in values}
        model_cfg = config_from_dict(spec.config, model_values)
        parent = click.get_current_context().parent
        resume = values.get("resume") or ((parent.obj or {}).get("resume") if parent else None)
        if resume is not None:
            # `gantool train MODEL --resume RUN`: the run's own config wins; MODEL must match.
            _report(train(TrainConfig(model=spec.name), resume=resume))
            return
        if values.get("data") is None:
            raise click.UsageError(
                "Missing option '--data' (a folder, or a built-in set: demo, digits).")
        _report(train(train_cfg, model_cfg))

    resume = click.Option(["--resume"], type=click.Path(path_type=Path), default=None,
                          help="Continue this run folder (it must be a run of this model).")
    return click.Command(
        spec.name, callback=callback, params=[*_train_options(spec), resume],
        help=f"{spec.description}\n\nKind: {spec.kind}. Plugin: {spec.plugin}.",
        short_help=spec.description,
    )


class ModelGroup(click.Group):
    """Subcommands made on demand from the model registry."""

    def list_commands(self, ctx):
        from translator.registry import get_registry

        return sorted(get_registry().models)

    def get_command(self, ctx, name):
        from translator.registry import get_registry

        registry = get_registry()
        if name not in registry.models:
            registry.model(name)  # raises a GantoolError that lists known models
        return _make_model_command(registry.models[name])

    def resolve_command(self, ctx, args):
        from translator.errors import GantoolError

        try:
            return super().resolve_command(ctx, args)
        except GantoolError as exc:
            raise click.UsageError(str(exc), ctx) from None


@click.group("train", cls=ModelGroup, invoke_without_command=True,
             subcommand_metavar="MODEL [OPTIONS]")
@click.option("--resume", type=click.Path(path_type=Path), default=None,
              help="Continue the run in this folder from its latest checkpoint.")
@click.option("--steps", type=int, default=None,
              help="With --resume: train up to this many steps in total.")
@click.option("--device", default="auto", show_default=True,
              help="With --resume: continue on this device (cpu, cuda, cuda:N) instead of "
              "the recorded one, e.g. to move a run between GPU and CPU.")
@click.pass_context
def train_command(ctx: click.Context, resume: Path | None, steps: int | None, device: str) -> None:
    """Train a model, or continue a run with --resume RUN_DIR.

    \b
    Examples:
      gantool train wgan-gp --data digits --size 32 --steps 2000
      gantool train cyclegan --data DIR --domain-a male --domain-b female
      gantool train --resume runs/wgan-gp-20261123-101500
      gantool train --resume runs/wgan-gp-20261123-101500 --device cpu --steps 3000
    Run `gantool train MODEL --help` for a model's own flags.
    """
    if ctx.invoked_subcommand is not None:
        if resume is not None:
            ctx.obj = {"resume": resume}
        return
    if resume is None:
        click.echo(ctx.get_help())
        ctx.exit(0)
    from translator.training import train

    _report(train(TrainConfig(steps=steps, device=device), resume=resume))


@click.command("sample")
@click.argument("run", required=False, type=click.Path(path_type=Path))
@click.option("--model", "onnx_model", type=click.Path(path_type=Path), default=None,
              help="Sample from an exported generation model (.onnx) instead of a run.")
@click.option("-n", "count", type=int, default=64, show_default=True, help="Number of images.")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=Path("samples.png"),
              show_default=True, help="Grid image to write.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--checkpoint", type=int, default=None, help="Step of the checkpoint to use.")
def sample_command(run: Path | None, onnx_model: Path | None, count: int, output: Path,
                   seed: int, checkpoint: int | None) -> None:
    """Write a grid of generated images from a run (or an exported model)."""
    from translator.errors import GantoolError

    if (run is None) == (onnx_model is None):
        raise GantoolError("give a RUN folder or --model FILE.onnx")
    if count < 1:
        raise GantoolError("-n must be at least 1")
    if onnx_model is not None:
        from translator.runtime.generate import sample_grid

        path = sample_grid(onnx_model, count, output, seed=seed)
    else:
        assert run is not None, "checked above: exactly one of RUN and --model"
        from translator.inference import sample_run

        path = sample_run(run, count, output, seed=seed, step=checkpoint)
    click.echo(f"Wrote {path}")


def add_commands(cli: click.Group) -> None:
    cli.add_command(train_command)
    cli.add_command(sample_command)
