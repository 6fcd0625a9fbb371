"""The ``gantool`` command line: parses, calls library functions, prints.

Every command module keeps heavy imports (torch, onnxruntime, cv2) inside its functions so
that ``gantool --help`` stays fast.
"""

from __future__ import annotations

import sys

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


def _add_plugin_commands() -> None:
    from translator.manager import get_plugin_manager

    pm = get_plugin_manager()
    for impl in pm.hook.register_commands.get_hookimpls():
        try:
            impl.function(cli=cli)
        except Exception as exc:
            pm.mark_broken(impl.plugin_name, f"register_commands: {type(exc).__name__}: {exc}")


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    _add_plugin_commands()
    cli.main(args=argv, prog_name="gantool")
