"""``gantool export FORMAT RUN`` (any registered exporter) and ``gantool inspect FILE.onnx``.

``export`` has one subcommand per registered exporter. ``onnx`` gets its own flags; any
other exporter gets the shared flags plus ``--option KEY=VALUE``, passed through in
``ExportRequest.options``, so a third-party exporter needs no CLI code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

_RUN = click.argument("run", type=click.Path(path_type=Path))
_CHECKPOINT = click.option("--checkpoint", type=int, default=None, metavar="STEP",
                           help="Export the checkpoint of this training step (default: latest).")

_ONNX_HELP = """Export a run's generators to ONNX (one self-contained file each).

\b
Translation models write one file per direction, generation models one file with a
latent input [N, latent_dim]. Batch, height and width stay dynamic (height and width
must be multiples of the network's gantool.size_multiple, e.g. 4 for ResNet generators,
2^depth for U-Nets). Each file is checked with onnx.checker and run in onnxruntime (CPU)
against PyTorch at two input shapes; a difference above 1e-4 (fp32) or 2e-2 (--fp16)
fails the export and writes nothing. --int8 quantizes the verified fp32 graph, calibrated on
the run's own training images (listed in gantool.int8_calibration), and fails unless its
output reaches --min-psnr dB against fp32 on held-out training images.

\b
Where files go (-o):
  (none)                  RUN/export/MODEL-a2b.onnx, RUN/export/MODEL-b2a.onnx
                          (RUN/export/MODEL.onnx for generation models)
  -o DIR                  an existing folder, or any path not ending in .onnx:
                          the default names inside it
  -o out/x.onnx           that file; with --direction both: out/x-a2b.onnx, out/x-b2a.onnx
  -o 'out/{model}-{direction}.onnx'   a name pattern

\b
Examples:
  gantool export onnx runs/cyclegan-20261123-101500
  gantool export onnx runs/RUN --direction a2b -o male2female.onnx --fp16
  gantool export onnx runs/RUN --static-size 256 --opset 20
  gantool export onnx runs/RUN --int8 -o 'int8/{model}-{direction}.onnx'
"""


def _run_exporter(name: str, run: Path, output: Path | None, direction: str | None,
                  checkpoint: int | None, options: dict[str, Any]) -> list[Path]:
    from translator.registry import get_registry
    from translator.specs import ExportRequest

    exporter = get_registry().exporter(name)
    request = ExportRequest(run_dir=run, output=output, direction=direction, options=options,
                            checkpoint=checkpoint)
    return exporter.export(request)


def _make_onnx_command() -> click.Command:
    @click.command("onnx", help=_ONNX_HELP, short_help="ONNX models, verified against PyTorch.")
    @_RUN
    @click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
                  help="File, folder or name pattern; see above.")
    @click.option("--direction", type=click.Choice(["a2b", "b2a", "both"]), default=None,
                  help="Translation models: which generator(s)  [default: both].")
    @click.option("--opset", type=int, default=18, show_default=True,
                  help="ONNX opset (18 is the lowest that torch writes for every model).")
    @click.option("--fp16", is_flag=True,
                  help="fp16 weights and compute; inputs and outputs stay float32.")
    @click.option("--static-size", type=int, default=None, metavar="N",
                  help="Fix height and width to N pixels (a multiple of the size multiple); "
                       "batch stays dynamic.")
    @click.option("--int8", is_flag=True,
                  help="Static int8 quantization (QDQ, per-channel weights) calibrated on the "
                       "run's training images; fails below the --min-psnr quality bar.")
    @click.option("--min-psnr", type=float, default=None, metavar="DB",
                  help="--int8: least PSNR of int8 against fp32 output on held-out training "
                       "images  [default: 30].")
    @_CHECKPOINT
    @click.option("--no-verify", is_flag=True, help="Skip the onnxruntime-vs-PyTorch check.")
    def onnx_command(run: Path, output: Path | None, direction: str | None,
                     checkpoint: int | None, no_verify: bool, **format_flags: Any) -> None:
        # The format's own flags (opset, fp16, static_size, int8, min_psnr) are named as
        # ExportRequest.options names them, so they pass through as they are.
        options = {**format_flags, "verify": not no_verify, "log": click.echo}
        _run_exporter("onnx", run, output, direction, checkpoint, options)

    return onnx_command


def _parse_option(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise click.BadParameter(f"'{text}': expected KEY=VALUE", param_hint="--option")
    try:
        return key.replace("-", "_"), json.loads(value)  # numbers, true/false, null
    except json.JSONDecodeError:
        return key.replace("-", "_"), value


def _make_generic_command(spec: Any) -> click.Command:
    @click.command(spec.name, help=f"{spec.description}\n\nPlugin: {spec.plugin}.",
                   short_help=spec.description)
    @_RUN
    @click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
                  help="Output file or folder (the exporter's default when left out).")
    @click.option("--direction", type=click.Choice(["a2b", "b2a", "both"]), default=None,
                  help="Translation models: which generator(s).")
    @_CHECKPOINT
    @click.option("--option", "raw_options", multiple=True, metavar="KEY=VALUE",
                  help="Exporter-specific setting (repeatable); VALUE is parsed as JSON when "
                       "it can be (numbers, true/false), else kept as text.")
    def command(run: Path, output: Path | None, direction: str | None, checkpoint: int | None,
                raw_options: tuple[str, ...]) -> None:
        options = dict(_parse_option(o) for o in raw_options)
        for path in _run_exporter(spec.name, run, output, direction, checkpoint, options):
            click.echo(f"Wrote {path}")

    return command


class ExportGroup(click.Group):
    """One subcommand per registered exporter, made on demand from the registry."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        from translator.registry import get_registry

        return sorted(get_registry().exporters)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        from translator.registry import get_registry

        registry = get_registry()
        spec = registry.exporter(name)  # unknown: a GantoolError listing the known ones
        # The built-in onnx exporter has typed flags; a plugin that replaced it under the
        # same name gets the generic command instead.
        if getattr(spec.export, "__module__", "") == "translator.exporters.onnx":
            return _make_onnx_command()
        return _make_generic_command(spec)

    def resolve_command(self, ctx: click.Context, args: list[str]):
        from translator.errors import GantoolError

        try:
            return super().resolve_command(ctx, args)
        except GantoolError as exc:
            raise click.UsageError(str(exc), ctx) from None


@click.group("export", cls=ExportGroup, subcommand_metavar="FORMAT RUN [OPTIONS]")
def export_command() -> None:
    """Export a trained run to a file format (see FORMAT below).

    Run `gantool export FORMAT --help` for a format's own flags.
    """


@click.command("inspect")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--check-providers", is_flag=True,
              help="Also open the model on each provider this onnxruntime has, to see whether "
                   "it really runs there.")
def inspect_command(path: Path, check_providers: bool) -> None:
    """Describe an ONNX file: inputs, outputs, opset, size, gantool metadata, and the
    onnxruntime providers this machine offers."""
    from translator.runtime.describe import describe_onnx, provider_lines

    for line in describe_onnx(path):
        click.echo(line)
    for line in provider_lines(path if check_providers else None):
        click.echo(line)


def add_commands(cli: click.Group) -> None:
    cli.add_command(export_command)
    cli.add_command(inspect_command)
