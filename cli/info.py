"""``gantool plugins``, ``gantool models`` and ``gantool providers``."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("plugins")
def plugins_command() -> None:
    """List installed plugins, what each registered (models, data sets, exporters, face
    detectors, commands), and why any is broken or had a registration refused.

    Exits with status 1 when any plugin is broken or refused, so a plugin's CI can run it.
    """
    from translator.registry import get_registry

    registry = get_registry()
    problems = 0
    for info in sorted(registry.pm.info.values(), key=lambda i: i.name):
        version = f" {info.version}" if info.version else ""
        if info.broken:
            status = click.style("BROKEN", fg="red")
        elif info.refused:
            status = click.style("REFUSED", fg="yellow")
        else:
            status = click.style("ok", fg="green")
        kind = ", built-in" if info.builtin else ""
        click.echo(f"{info.name}{version} ({info.module}{kind}) [{status}]")
        if info.broken:
            click.echo(f"    error: {info.error}")
        for refusal in info.refused:
            click.echo(f"    refused: {refusal}")
        if info.registered:
            click.echo(f"    registers: {', '.join(info.registered)}")
        if info.hooks:
            click.echo(f"    hooks: {', '.join(info.hooks)}")
        problems += not info.healthy
    if problems:
        click.echo(f"{problems} plugin(s) with problems", err=True)
        raise SystemExit(1)


@click.command("models")
@click.argument("pattern", default="*")
def models_command(pattern: str) -> None:
    """List trainable models (matching a glob PATTERN) with their sizes."""
    from translator.registry import list_models

    specs = list_models(pattern)
    width = max((len(s.name) for s in specs), default=0)
    for spec in specs:
        click.echo(f"{spec.name:<{width}}  {spec.kind:<11}  {spec.description}  [{spec.plugin}]")
        if spec.summary is not None:
            click.echo(f"{'':<{width}}  {spec.summary(spec.config())}")


@click.command("providers")
@click.option("--check", "model", type=click.Path(dir_okay=False, path_type=Path),
              metavar="FILE.onnx", help="Open this model on each provider the installed "
              "onnxruntime has, to see whether it really runs there.")
def providers_command(model: Path | None) -> None:
    """List the execution providers --provider accepts, which of them the installed
    onnxruntime package has, and how to get the others."""
    from translator.runtime.describe import provider_lines

    for line in provider_lines(model):
        click.echo(line)


def add_commands(cli: click.Group) -> None:
    cli.add_command(plugins_command)
    cli.add_command(models_command)
    cli.add_command(providers_command)
