"""``translator.cli``: the ``gantool`` command line: parses, calls library functions, prints.

This folder, ``cli/``, is the package ``translator.cli``: ``pyproject.toml`` maps the folder
to that name (``[tool.setuptools] package-dir``), so ``translator.cli.train`` is
``cli/train.py``. ``python -m translator.cli`` runs the same app as ``gantool``.

Every command module keeps heavy imports (torch, onnxruntime, cv2) inside its functions so
that ``gantool --help`` stays fast.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from translator import __version__
from translator.errors import GantoolError


class GantoolGroup(click.Group):
    """A group that turns :class:`GantoolError` into one ``Error:`` line and exit code 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except GantoolError as exc:
            raise click.ClickException(str(exc)) from None
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            sys.exit(130)


@click.group(cls=GantoolGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gantool")
def cli() -> None:
    """gantool: train image GANs, export them to ONNX and run them on images, videos and
    the webcam.

    \b
    Start here:
      gantool demo                      train, export and apply on built-in data
      gantool models                    what can be trained
      gantool train cyclegan --data DIR --domain-a male --domain-b female
      gantool export onnx runs/RUN
      gantool webcam --model model.onnx
    """


def _add_builtin_commands() -> None:
    from . import demo, evaluate, export, info, runtime, serve, train

    for module in (info, train, evaluate, export, runtime, demo, serve):
        module.add_commands(cli)


_add_builtin_commands()


_commands_added: dict[int, list[Any]] = {}


def add_plugin_commands(group: click.Group, pm: Any = None) -> None:
    """Let each plugin's ``register_commands`` add commands to ``group``.

    Each plugin adds to a group of its own, whose commands join ``group`` only when its
    hook succeeded. A name that is taken (a core command, or one an earlier plugin added)
    is refused and reported by ``gantool plugins``; the plugin's other commands stay.
    """
    from translator.manager import get_plugin_manager

    pm = pm if pm is not None else get_plugin_manager()
    if pm in _commands_added.get(id(group), []):
        return  # main() called again in one process: the commands are already there
    _commands_added.setdefault(id(group), []).append(pm)
    owners = dict.fromkeys(group.commands, "gantool")
    staging: dict[str, click.Group] = {}

    def kwargs_for(plugin_name: str) -> dict[str, Any]:
        staging[plugin_name] = click.Group(group.name)
        return {"cli": staging[plugin_name]}

    for plugin_name, _ in pm.call_each("register_commands", kwargs_for):
        info = pm.info.get(plugin_name)
        for name, command in staging[plugin_name].commands.items():
            owner = owners.get(name)
            if owner is not None:
                who = "a core command" if owner == "gantool" else f"plugin '{owner}'s command"
                if info is not None:
                    info.refused.append(f"command '{name}': clashes with {who}")
                continue
            group.add_command(command, name)
            owners[name] = plugin_name
            if info is not None:
                info.registered.append(f"command {name}")


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    add_plugin_commands(cli)
    cli.main(args=argv, prog_name="gantool")
