"""``gantool apply`` and ``gantool webcam``: parse, call :mod:`translator.runtime`, print."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from translator.errors import GantoolError
from translator.onnx_metadata import MAX_INPUT_SIZE, MIN_INPUT_SIZE

PROVIDER_CHOICE = click.Choice(["auto", "cuda", "tensorrt", "cpu"])


def _log(message: str) -> None:
    click.echo(message, err=True)


def _model_options(f):
    f = click.option(
        "--input-range",
        metavar="LO,HI",
        help="Value range the model expects (e.g. 0,1 or -1,1); only for models without gantool metadata.",
    )(f)
    f = click.option(
        "--size",
        type=click.IntRange(min=MIN_INPUT_SIZE, max=MAX_INPUT_SIZE),
        help="Processing size (short side, pixels); default: the model's training size.",
    )(f)
    f = click.option(
        "--provider",
        type=PROVIDER_CHOICE,
        default="auto",
        show_default=True,
        help="onnxruntime execution provider; auto uses CUDA when it works, else CPU.",
    )(f)
    f = click.option(
        "--face-model",
        type=click.Path(dir_okay=False),
        help="Face detector model file (a YuNet .onnx selects the yunet detector).",
    )(f)
    f = click.option(
        "--detector",
        metavar="NAME",
        help="Face detector plugin (built in: haar, yunet). Default: haar, or yunet with --face-model.",
    )(f)
    f = click.option("--faces", is_flag=True, help="Translate only the faces, blended back into the frame.")(
        f
    )
    f = click.option("--side-by-side", is_flag=True, help="Write original and result side by side.")(f)
    f = click.option(
        "--model", "-m", "model", required=True, metavar="FILE.onnx", help="Exported ONNX model."
    )(f)
    return f


def _detector(detector: str | None, face_model: str | None) -> tuple[str, dict[str, Any]]:
    if face_model is None:
        return detector or "haar", {}
    name = detector or "yunet"
    return name, {"cascade" if name == "haar" else "model": face_model}


@click.command("apply")
@_model_options
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@click.option(
    "-o",
    "--output",
    metavar="PATH",
    help="Output file (one input) or folder; folders mirror the input tree. "
    "Default: next to each input, named after the target domain.",
)
@click.option(
    "--blend",
    type=click.Choice(["feather", "poisson"]),
    default="feather",
    show_default=True,
    help="How faces are blended back (--faces).",
)
@click.option(
    "--margin",
    type=click.FloatRange(0, 2),
    default=0.4,
    show_default=True,
    help="Context around each face, as a fraction of its size (--faces).",
)
@click.option("--color-match", is_flag=True, help="Match each face's colours to the original.")
@click.option("--batch-size", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def apply_command(
    model: str,
    inputs: tuple[str, ...],
    output: str | None,
    faces: bool,
    detector: str | None,
    face_model: str | None,
    side_by_side: bool,
    provider: str,
    size: int | None,
    input_range: str | None,
    blend: str,
    margin: float,
    color_match: bool,
    batch_size: int,
    no_progress: bool,
) -> None:
    """Translate images, folders (recursively) and video files with an ONNX model.

    Unreadable files are reported and skipped; the exit code is 1 if any failed.
    """
    from translator.runtime.apply import apply

    name, options = _detector(detector, face_model)
    report = apply(
        model,
        inputs,
        output,
        provider=provider,
        size=size,
        input_range=input_range,
        faces=faces,
        detector=name,
        detector_options=options,
        margin=margin,
        blend=blend,
        color_match=color_match,
        side_by_side=side_by_side,
        batch_size=batch_size,
        progress=not no_progress,
        log=_log,
    )
    _print_report(report)


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


@click.command("translate")
@click.argument("run", type=click.Path(file_okay=False))
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@click.option("-o", "--output", type=click.Path(), default=None,
              help="Output file (one input) or folder; default: beside each input.")
@click.option("--direction", type=click.Choice(["a2b", "b2a"]), default="a2b", show_default=True)
@click.option("--checkpoint", type=int, default=None, help="Step of the checkpoint (default latest).")
@click.option("--side-by-side", is_flag=True, help="Write the original and the result side by side.")
@click.option("--faces", is_flag=True, help="Translate detected faces only and blend them back.")
@click.option("--batch-size", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
def translate_command(run: str, inputs: tuple[str, ...], output: str | None, direction: str,
                      checkpoint: int | None, side_by_side: bool, faces: bool, batch_size: int,
                      no_progress: bool) -> None:
    """Translate images, folders and videos with a run's checkpoint (PyTorch), to look at
    results before exporting. Same pipeline and outputs as `gantool apply`."""
    from translator.runtime.apply import apply
    from translator.runtime.torch_model import CheckpointModel

    for p in inputs:
        if not Path(p).exists():
            raise GantoolError(f"no such file or folder: {p}")
    model = CheckpointModel(Path(run), direction, checkpoint)
    report = apply(model, inputs, output, faces=faces, side_by_side=side_by_side,
                   batch_size=batch_size, progress=not no_progress, log=_log)
    _print_report(report)


@click.command("webcam")
@_model_options
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
    help="Also write the translated stream to a video file.",
)
@click.option("--max-frames", type=click.IntRange(min=1), help="Stop after N frames.")
@click.option("--detect-every", type=click.IntRange(min=1), default=3, show_default=True,
              metavar="N", help="--faces: run the face detector on every N-th frame; the "
              "tracked boxes stand in between.")
@click.option("--no-window", is_flag=True, help="Run without a display (with --record).")
@click.option(
    "--snapshot-dir",
    type=click.Path(file_okay=False),
    default=".",
    show_default=True,
    help="Where the s key saves snapshots.",
)
def webcam_command(
    model: str,
    faces: bool,
    detector: str | None,
    face_model: str | None,
    side_by_side: bool,
    provider: str,
    size: int | None,
    input_range: str | None,
    camera: int,
    source: str | None,
    record: str | None,
    max_frames: int | None,
    detect_every: int,
    no_window: bool,
    snapshot_dir: str,
) -> None:
    """Translate a live camera (or --source video) stream.

    Keys: q quit, f faces on/off, space original/translated, s snapshot.
    """
    from translator.runtime.webcam import run_webcam

    name, options = _detector(detector, face_model)
    result = run_webcam(
        model,
        camera=camera,
        source=source,
        faces=faces,
        detector=name,
        detector_options=options,
        side_by_side=side_by_side,
        record=record,
        max_frames=max_frames,
        detect_every=detect_every,
        window=not no_window,
        provider=provider,
        size=size,
        input_range=input_range,
        snapshot_dir=snapshot_dir,
        log=_log,
    )
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
