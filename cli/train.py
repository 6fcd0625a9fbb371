"""``gantool train MODEL``, ``gantool train --resume RUN`` and ``gantool sample``.

Each registered model is a subcommand of ``train`` whose flags are the shared training
flags plus the fields of the model's config dataclass, so a plugin adds flags without
touching the CLI.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import click

from translator.config import TrainConfig, click_options, resumable

#: Where a value came from when the user gave it (not a default).
_GIVEN = (click.core.ParameterSource.COMMANDLINE, click.core.ParameterSource.ENVIRONMENT)


def _train_options(spec) -> list[click.Option]:
    shared = click_options(TrainConfig, skip={"model"})
    for option in shared:
        if option.name in spec.train_defaults:
            option.default = spec.train_defaults[option.name]
    shared_names = {o.name for o in shared}
    own = [o for o in click_options(spec.config) if o.name not in shared_names]
    return shared + own


def _report(result) -> None:
    from translator.training.device import distributed_from_env

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

        ctx = click.get_current_context()
        values.update(_data_defaults(spec, ctx, values))

        train_names = {f.name for f in dataclasses.fields(TrainConfig)}
        shared = {k: v for k, v in values.items() if k in train_names}
        if shared["data"] is None:
            del shared["data"]  # only --resume may leave it out; checked below
        train_cfg = config_from_dict(TrainConfig, shared)
        train_cfg = dataclasses.replace(train_cfg, model=spec.name)
        model_values = {f.name: values[f.name] for f in dataclasses.fields(spec.config)
                        if f.name in values}
        model_cfg = config_from_dict(spec.config, model_values)
        parent = (ctx.parent.obj if ctx.parent else None) or {}
        resume = values.get("resume") or parent.get("resume")
        if resume is not None:
            # `gantool train MODEL --resume RUN`: the run's own config, with the flags given
            # that may change; MODEL must match.
            given = {**parent.get("given", {}), **_given(ctx, values)}
            _report(train(TrainConfig(model=spec.name), resume=resume,
                          changes=resume_changes(resume, given)))
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


def _data_defaults(spec, ctx: click.Context, values: dict[str, Any]) -> dict[str, Any]:
    """The model's defaults for this data (faces) that no given flag overrides, logged."""
    from translator.data.datasets import data_defaults, defaults_line

    if values.get("data") is None or values.get("resume") is not None:
        return {}
    given = _given(ctx, values)
    taken = {k: v for k, v in data_defaults(spec, values["data"]).items() if k not in given}
    if taken:
        click.echo(defaults_line(spec, values["data"], taken), err=True)
    return taken


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
              help="Continue the run in this folder from its latest checkpoint; the options "
              "below change it (e.g. --steps to train further, --device to move it).")
@click.pass_context
def train_command(ctx: click.Context, resume: Path | None, **values: Any) -> None:
    """Train a model, or continue a run with --resume RUN_DIR.

    \b
    Examples:
      gantool train wgan-gp --data digits --size 32 --steps 2000
      gantool train cyclegan --data DIR --domain-a male --domain-b female
      gantool train --resume runs/wgan-gp-20261123-101500
      gantool train --resume runs/wgan-gp-20261123-101500 --device cpu --steps 3000
    Run `gantool train MODEL --help` for a model's own flags.
    """
    given = _given(ctx, values)
    if ctx.invoked_subcommand is not None:
        ctx.obj = {"resume": resume, "given": given}
        return
    if resume is None:
        click.echo(ctx.get_help())
        ctx.exit(0)
    from translator.training import train

    _report(train(TrainConfig(), resume=resume, changes=resume_changes(resume, given)))


# The options a resumed run may change, also before (or without) MODEL.
for _option in click_options(TrainConfig, only=[f.name for f in dataclasses.fields(TrainConfig)
                                                 if resumable(f.name)]):
    train_command.params.append(_option)


def _given(ctx: click.Context, values: dict[str, Any]) -> dict[str, Any]:
    """The options the user gave (not left at their defaults)."""
    return {name: value for name, value in values.items()
            if name != "resume" and ctx.get_parameter_source(name) in _GIVEN}


def resume_changes(resume: Path, given: dict[str, Any]) -> dict[str, Any]:
    """What the flags given with ``--resume`` change: those a resumed run may change, as
    given; any other must repeat what the run recorded, or it is refused by name (never
    dropped in silence)."""
    from translator.config import flag_name
    from translator.errors import GantoolError
    from translator.training.runs import read_run_config

    rc = read_run_config(resume)
    changes = {}
    for name, value in given.items():
        if resumable(name):
            changes[name] = value
            continue
        recorded = getattr(rc.train, name) if hasattr(rc.train, name) else getattr(
            rc.model_config, name, None)
        if value != recorded:
            raise GantoolError(f"{flag_name(name)} cannot change on --resume (the run was "
                               f"trained with {recorded})")
    return changes


@click.command("sample")
@click.argument("run", required=False, type=click.Path(path_type=Path))
@click.option("--model", "-m", "onnx_model", type=click.Path(path_type=Path), default=None,
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
