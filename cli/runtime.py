"""``gantool apply``, ``translate`` and ``webcam``: parse, call :mod:`translator.runtime`, print.

Their shared flags are the fields of :class:`translator.runtime.options.RuntimeOptions`
(``gantool serve`` offers some too), declared there once with their help and bounds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import click

from translator.config import click_options, config_from_dict
from translator.errors import GantoolError
from translator.runtime.options import MODEL_FIELDS, RuntimeOptions


def _log(message: str) -> None:
    click.echo(message, err=True)


def runtime_flags(fields: Iterable[str]) -> Callable[[click.Command], click.Command]:
    """Give a command the named :class:`RuntimeOptions` fields as flags (help, default and
    range from the dataclass) and hand its callback one ``options`` argument built from them.
    Used above ``@click.command``."""
    names = frozenset(fields)

    def decorate(command: click.Command) -> click.Command:
        callback = command.callback
        assert callback is not None

        def with_options(**values: Any) -> Any:
            chosen = {name: values.pop(name) for name in names}
            return callback(options=config_from_dict(RuntimeOptions, chosen), **values)

        command.params.extend(click_options(RuntimeOptions, only=set(names)))
        command.callback = with_options
        return command

    return decorate


def runtime_fields(*, without: Iterable[str] = ()) -> frozenset[str]:
    return frozenset(f.name for f in dataclasses.fields(RuntimeOptions)) - set(without)


#: For the commands that run a run's checkpoint in PyTorch (translate, evaluate).
device_option = click.option("--device", default="auto", show_default=True,
                             help="auto (CUDA when present, else CPU), cpu, cuda or cuda:N")

_model_option = click.option("--model", "-m", "model", required=True, metavar="FILE.onnx",
                             help="Exported ONNX model.")


@runtime_flags(runtime_fields())
@click.command("apply")
@_model_option
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@click.option(
    "-o",
    "--output",
    metavar="PATH",
    help="Output file (one input) or folder; folders mirror the input tree. "
    "Default: next to each input, named after the target domain.",
)
def apply_command(model: str, inputs: tuple[str, ...], output: str | None, options: RuntimeOptions) -> None:
    """Translate images, folders (recursively) and video files with an ONNX model.

    Unreadable files are reported and skipped; the exit code is 1 if any failed.
    """
    from translator.runtime.apply import apply

    _print_report(apply(model, inputs, output, options, log=_log))


def _print_report(report) -> None:
    from translator.data.images import shown_path

    for path, reason in report.skipped:
        click.echo(f"skipped {shown_path(path)}: {reason}", err=True)
    for path, reason in report.failed:
        click.echo(f"failed  {shown_path(path)}: {reason}", err=True)
    if report.no_faces:
        names = ", ".join(shown_path(p.name) for p in report.no_faces[:5])
        more = f" and {len(report.no_faces) - 5} more" if len(report.no_faces) > 5 else ""
        click.echo(f"no face found (written unchanged): {names}{more}", err=True)
    if len(report.written) == 1:
        click.echo(f"Wrote {shown_path(report.written[0][1])}")
    click.echo(f"Done: {report.summary()}.")
    if report.failed:
        raise SystemExit(1)


@runtime_flags(runtime_fields(without=MODEL_FIELDS))
@click.command("translate")
@click.argument("run", type=click.Path(file_okay=False))
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@click.option("-o", "--output", type=click.Path(), default=None,
              help="Output file (one input) or folder; default: beside each input.")
@click.option("--direction", type=click.Choice(["a2b", "b2a"]), default="a2b", show_default=True)
@click.option("--checkpoint", type=int, default=None, help="Step of the checkpoint (default latest).")
@device_option
def translate_command(run: str, inputs: tuple[str, ...], output: str | None, direction: str,
                      checkpoint: int | None, device: str, options: RuntimeOptions) -> None:
    """Translate images, folders and videos with a run's checkpoint (PyTorch), to look at
    results before exporting. Same pipeline and outputs as `gantool apply`."""
    from translator.runtime.apply import apply
    from translator.runtime.torch_model import CheckpointModel
    from translator.training.device import choose_device

    for p in inputs:
        if not Path(p).exists():
            raise GantoolError(f"no such file or folder: {p}")
    where = choose_device(device, announce=False)
    model = CheckpointModel(Path(run), direction, checkpoint, device=str(where))
    _print_report(apply(model, inputs, output, options, log=_log))


@runtime_flags(runtime_fields(without={"batch_size", "progress"}))
@click.command("webcam")
@_model_option
@click.option("--camera", type=click.IntRange(min=0), default=0, show_default=True, help="Camera index.")
@click.option(
    "--source",
    type=click.Path(dir_okay=False),
    metavar="VIDEO",
    help="A video file that stands in for the camera (every frame, in order).",
)
@click.option(
    "--record",
    type=click.Path(dir_okay=False),
    metavar="FILE.mp4",
    help="Also write the translated stream to a video file (kept when the stream ends, "
    "--max-frames is reached, q or Ctrl+C is pressed; not after an error).",
)
@click.option("--max-frames", type=click.IntRange(min=1), help="Stop after N frames.")
@click.option("--virtual-camera", is_flag=True,
              help="Also send the translated stream to a virtual camera that video-call and "
                   "streaming apps can pick, at the source's size and frame rate (pip install "
                   '"gantool[vcam]"; v4l2loopback on Linux, OBS\'s virtual camera elsewhere).')
@click.option("--detect-every", type=click.IntRange(min=1), default=3, show_default=True,
              metavar="N", help="--faces: run the face detector on every N-th frame; the "
              "tracked boxes stand in between.")
@click.option("--no-window", is_flag=True,
              help="Run without a display: with --record to keep the stream; without it, "
                   "nothing is shown or written and only the frame rate is reported.")
@click.option(
    "--snapshot-dir",
    type=click.Path(file_okay=False),
    default=".",
    show_default=True,
    help="Where the s key saves snapshots.",
)
def webcam_command(model: str, camera: int, source: str | None, no_window: bool,
                   options: RuntimeOptions, **flags: Any) -> None:
    """Translate a live camera (or --source video) stream.

    Keys: q quit, f faces on/off, space original/translated, s snapshot.
    """
    from translator.runtime.webcam import WebcamOptions, run_webcam

    # The remaining flags (record, max_frames, detect_every, snapshot_dir, virtual_camera)
    # are its fields.
    live = WebcamOptions(window=not no_window, **flags)
    result = run_webcam(model, source if source is not None else camera, options, live, log=_log)
    if no_window and live.record is None and not live.virtual_camera:
        click.echo("Nothing was shown or written (--no-window without --record): the figures "
                   "below are all this run gives.")
    dropped = f", {result.dropped} dropped to keep up" if result.dropped else ""
    click.echo(
        f"{result.frames} frames at {result.mean_fps:.1f} FPS on {result.provider}{dropped}, "
        f"{1000 * result.latency:.0f} ms capture to display ({result.ended})."
    )
    if result.record is not None:
        click.echo(f"Recorded {result.record}")


def add_commands(cli: click.Group) -> None:
    cli.add_command(apply_command)
    cli.add_command(webcam_command)
    cli.add_command(translate_command)
