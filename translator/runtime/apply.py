"""``gantool apply``: run a model over images, folders and video files.

Bad files are skipped and reported with their reason; the run always finishes. Outputs
never land on an input file or inside an input folder.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from translator.data.images import ImageReadError, is_image_path, read_image
from translator.errors import GantoolError
from translator.safe_write import atomic_path, file_identity, is_inside, safe_component

from .options import RuntimeOptions
from .pipeline import OWN_SIZE_CAP, FramePipeline
from .session import Log, ModelInfo, OpenModel, stderr_log
from .sources import VideoReader, is_video_path

# Formats written as themselves; any other image input is written as PNG.
WRITABLE_IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"})


@dataclass(frozen=True)
class Job:
    src: Path
    dst: Path
    kind: Literal["image", "video"]
    #: The folder the user chose (or the default beside the input): dst must stay inside.
    root: Path


@dataclass
class ApplyReport:
    """What an apply run did; ``failed`` holds ``(path, reason)`` pairs."""

    written: list[tuple[Path, Path]] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    #: Files inside input folders that are neither images nor videos.
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    #: Inputs (face mode) in which no face was found; written unchanged.
    no_faces: list[Path] = field(default_factory=list)
    provider: str = ""

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        parts = [f"{len(self.written)} written"]
        if self.failed:
            parts.append(f"{len(self.failed)} failed")
        if self.skipped:
            parts.append(f"{len(self.skipped)} skipped")
        if self.no_faces:
            parts.append(f"{len(self.no_faces)} without a face")
        return ", ".join(parts)


def _tag(session: OpenModel) -> str:
    """The default outputs' suffix: the model's output domain, which its metadata (from
    wherever the model came) sets, so reduced to one harmless name component."""
    return safe_component(session.info.domain_to, fallback="translated")


def _image_dst(path: Path) -> Path:
    ext = path.suffix.lower()
    return path if ext in WRITABLE_IMAGE_EXTENSIONS else path.with_suffix(".png")


def _folder_jobs(folder: Path, out_root: Path, report: ApplyReport) -> list[Job]:
    jobs = []
    for path in sorted(folder.rglob("*")):
        if any(p.startswith(".") for p in path.relative_to(folder).parts):
            continue
        if path.is_symlink() and not path.is_file():
            # Links to folders are not followed (they can loop); broken or looping links
            # lead nowhere. Either way the user hears of it.
            why = "a link to a folder (not followed)" if path.is_dir() else "a broken or looping link"
            report.skipped.append((path, why))
            continue
        if not path.is_file():
            continue
        rel = path.relative_to(folder)
        if is_image_path(path):
            jobs.append(Job(path, _image_dst(out_root / rel), "image", out_root))
        elif is_video_path(path):
            jobs.append(Job(path, (out_root / rel).with_suffix(".mp4"), "video", out_root))
        else:
            report.skipped.append((path, "not an image or video file"))
    return jobs


def _file_job(path: Path, dst: Path) -> Job:
    return Job(path, dst, "video" if is_video_path(path) else "image", dst.parent)


def plan_jobs(
    inputs: Sequence[str | os.PathLike],
    output: str | os.PathLike | None,
    tag: str,
    report: ApplyReport,
) -> list[Job]:
    """Map inputs to output paths; raises :class:`GantoolError` for missing inputs and for
    outputs that would land on an input file or inside an input folder."""
    if not inputs:
        raise GantoolError("no input given")
    paths = [Path(p) for p in inputs]
    for p in paths:
        if not p.exists():
            raise GantoolError(f"no such file or folder: {p}")
    out = Path(output) if output is not None else None
    if out is not None and out.is_file() and (len(paths) > 1 or paths[0].is_dir()):
        raise GantoolError(f"output {out} is a file; give a folder for several inputs")
    single_file_out = (
        out is not None and len(paths) == 1 and paths[0].is_file() and out.suffix != "" and not out.is_dir()
    )
    jobs: list[Job] = []
    for p in paths:
        if p.is_dir():
            if out is None:
                root = p.parent / f"{p.name}_{tag}"
            elif len(paths) == 1:
                root = out
            else:
                root = out / p.name
            _refuse_inside(root, p)
            jobs.extend(_folder_jobs(p, root, report))
        elif single_file_out:
            assert out is not None
            video_in, video_out = is_video_path(p), is_video_path(out)
            if video_in != video_out or (not video_out and not is_image_path(out)):
                want = "a video (.mp4, .avi)" if video_in else "an image (.png, .jpg, ...)"
                raise GantoolError(f"output {out} must be {want} file for input {p.name}")
            jobs.append(_file_job(p, out))
        else:
            folder = out or p.parent
            if is_video_path(p):
                name = f"{p.stem}_{tag}.mp4" if out is None else p.with_suffix(".mp4").name
                jobs.append(Job(p, folder / name, "video", folder))
            else:
                name = f"{p.stem}_{tag}{p.suffix}" if out is None else p.name
                jobs.append(Job(p, _image_dst(folder / name), "image", folder))
    for job in jobs:
        check_inside_root(job)
    _refuse_overwriting_inputs(jobs, paths)
    return jobs


def check_inside_root(job: Job) -> None:
    """Refuse an output that would land outside its output folder: a name that climbs out
    of it, or a folder inside it that is a link to somewhere else."""
    if not is_inside(job.dst, job.root):
        raise GantoolError(f"refusing to write {job.dst}: it lies outside the output folder "
                           f"{job.root} (a link inside it leads elsewhere)")


def _refuse_overwriting_inputs(jobs: list[Job], paths: list[Path]) -> None:
    """Compare files, not names: a hard link or symlink to an input (``cp -al`` trees) is
    the input itself, and writing it would change the input."""
    inputs = {file_identity(p): p for p in [*paths, *(j.src for j in jobs)]}
    folders = [p for p in paths if p.is_dir()]
    seen: dict[Path, Path] = {}
    for job in jobs:
        dst = job.dst.resolve()
        same = inputs.get(file_identity(dst)) if dst.exists() else None
        if same is not None:
            link = "" if dst == same.resolve() else f" ({job.dst} is the same file as the input)"
            raise GantoolError(f"refusing to overwrite input file {same}{link}; choose another -o")
        for folder in folders:
            # A later run over the same folder would pick these outputs up as inputs.
            _refuse_inside(dst.parent, folder)
        if dst in seen:
            raise GantoolError(
                f"{seen[dst]} and {job.src} would both be written to {job.dst}; "
                "give them separate runs or rename one"
            )
        seen[dst] = job.src


def _refuse_inside(out_root: Path, folder: Path) -> None:
    target = file_identity(folder)
    for place in (out_root.resolve(), *out_root.resolve().parents):
        if file_identity(place) == target:
            raise GantoolError(f"refusing to write into the input folder {folder}; choose -o outside it")


def _write_image(path: Path, image: np.ndarray) -> None:
    from PIL import Image

    options: dict[str, Any] = {}
    if path.suffix.lower() in (".jpg", ".jpeg", ".webp"):
        options["quality"] = 95
    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, **options)


def apply(
    model: str | os.PathLike | OpenModel,
    inputs: Sequence[str | os.PathLike],
    output: str | os.PathLike | None = None,
    options: RuntimeOptions = RuntimeOptions(),
    *,
    log: Log = stderr_log,
) -> ApplyReport:
    """Translate every image and video under ``inputs``; see ``gantool apply --help``.

    ``model`` is an ONNX file (opened as ``options`` say) or an open model (anything with
    ``info``, ``provider`` and ``run`` like :class:`ModelSession`, e.g. a checkpoint's
    generator for ``gantool translate``). Raises :class:`GantoolError` for problems with
    the model or the paths as a whole; a single bad file is recorded in the report's
    ``failed`` list instead.
    """
    report = ApplyReport()
    for p in inputs:  # before loading the model, so a typo fails at once
        if not Path(p).exists():
            raise GantoolError(f"no such file or folder: {p}")
    session: OpenModel = (options.open_model(model, log) if isinstance(model, (str, os.PathLike))
                          else model)
    report.provider = session.provider
    jobs = plan_jobs(inputs, output, _tag(session), report)
    own_size = OWN_SIZE_CAP if options.size is None and session.info.fixed_hw is None else None
    log(f"Model: {_described(session.info, own_size)}; provider: {session.provider}")
    face_opts = options.face_options() if options.faces else None
    pipe = FramePipeline(session, face_opts, side_by_side=options.side_by_side,
                         batch_size=options.batch_size, own_size_up_to=own_size)
    images = [j for j in jobs if j.kind == "image"]
    videos = [j for j in jobs if j.kind == "video"]
    _run_images(pipe, images, report, options.progress)
    for job in videos:
        _run_video(pipe, job, report, options.progress, log)
    return report


def _described(info: ModelInfo, own_size: int | None) -> str:
    """The model, and the size its whole images run at."""
    if own_size is None or info.kind != "translation":
        return info.describe()
    return (f"{info.describe()}; whole images run at their own size, short side "
            f"{info.processing_size} to {own_size}px (--size N: one size for all)")


def _run_images(pipe: FramePipeline, jobs: list[Job], report: ApplyReport, progress: bool) -> None:
    from tqdm import tqdm

    bar = tqdm(total=len(jobs), unit="img", disable=not progress or not jobs, file=sys.stderr)
    step = pipe.batch_size
    for start in range(0, len(jobs), step):
        loaded: list[tuple[Job, np.ndarray]] = []
        for job in jobs[start : start + step]:
            try:
                loaded.append((job, read_image(job.src)))
            except ImageReadError as exc:
                report.failed.append((job.src, str(exc)))
            except OSError as exc:
                report.failed.append((job.src, f"unreadable ({exc.strerror or exc})"))
        _translate_and_write(pipe, loaded, report)
        bar.update(len(jobs[start : start + step]))
    bar.close()


def _translate_and_write(
    pipe: FramePipeline, loaded: list[tuple[Job, np.ndarray]], report: ApplyReport
) -> None:
    if not loaded:
        return
    try:
        results = pipe.process([img for _, img in loaded])
    except Exception as exc:
        if len(loaded) > 1:  # find the one image that broke the batch
            for item in loaded:
                _translate_and_write(pipe, [item], report)
            return
        report.failed.append((loaded[0][0].src, f"model failed: {_short(exc)}"))
        return
    if pipe.faces is not None:
        for (job, _), count in zip(loaded, pipe.last_face_counts, strict=True):
            if count == 0:
                report.no_faces.append(job.src)
    for (job, _), result in zip(loaded, results, strict=True):
        try:
            check_inside_root(job)  # again at write time: folders may have changed since
            _write_image(job.dst, result)
            report.written.append((job.src, job.dst))
        except GantoolError as exc:
            report.failed.append((job.src, str(exc)))
        except (OSError, ValueError) as exc:
            report.failed.append((job.src, f"cannot write {job.dst}: {_short(exc)}"))


def _run_video(pipe: FramePipeline, job: Job, report: ApplyReport, progress: bool,
               log: Log = stderr_log) -> None:
    from tqdm import tqdm

    from .faces import BoxSmoother
    from .video import VideoOutput, quiet_libav

    quiet_libav()
    try:
        check_inside_root(job)  # again at write time: folders may have changed since
        reader = VideoReader(job.src)
    except GantoolError as exc:
        report.failed.append((job.src, str(exc)))
        return
    writer = VideoOutput(job.dst, reader.props.fps, audio_from=job.src, log=log)
    pipe.reset()
    if pipe.faces is not None:
        pipe.faces.smoother = BoxSmoother()
    declared = reader.props.frames
    bar = tqdm(total=declared or None, unit="frame", desc=job.src.name, disable=not progress,
               file=sys.stderr, dynamic_ncols=True)
    chunk: list[np.ndarray] = []
    done = False
    try:
        for frame in reader:
            chunk.append(frame)
            if len(chunk) == pipe.batch_size:
                _encode(pipe, chunk, writer, bar)
                chunk = []
        if chunk:
            _encode(pipe, chunk, writer, bar)
        problem = _frame_count_problem(writer.frames, declared)
        if problem:
            report.failed.append((job.src, problem))
            return
        writer.close()
        done = True
    except GantoolError as exc:
        report.failed.append((job.src, str(exc)))
        return
    except Exception as exc:
        report.failed.append((job.src, f"failed at frame {writer.frames}: {_short(exc)}"))
        return
    finally:
        bar.close()
        reader.close()
        if not done:
            writer.abort()
        if pipe.faces is not None:
            pipe.faces.smoother = None
    if writer.audio not in ("copied", "none"):
        log(f"{job.src.name}: audio {writer.audio}")
    report.written.append((job.src, job.dst))


def _encode(pipe: FramePipeline, frames: list[np.ndarray], writer: Any, bar: Any) -> None:
    for out in pipe.process(frames):
        writer.write(out)
    bar.update(len(frames))


def _frame_count_problem(decoded: int, declared: int) -> str | None:
    """Why a video's frames fall short: none at all, or fewer than its header declares
    (a truncated file). Containers may round the declared count, hence the slack of 1."""
    if decoded == 0:
        return "no frames could be decoded (empty or truncated video); nothing written"
    if declared and decoded < declared - 1:
        return (f"truncated video: only {decoded} of the {declared} frames it declares could "
                "be decoded; nothing written")
    return None


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]
