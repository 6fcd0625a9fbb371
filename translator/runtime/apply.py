"""``gantool apply``: run a model over images, folders and video files.

Bad files are skipped and reported with their reason; the run always finishes. Outputs
never land on an input file or inside an input folder.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from translator.data.images import ImageReadError
from translator.errors import GantoolError
from translator.safe_write import file_identity, is_inside, safe_component

from .options import RuntimeOptions
from .pipeline import OWN_SIZE_CAP, FramePipeline
from .session import Log, ModelInfo, OpenModel, stderr_log
from .sinks import SINKS, ImageSink
from .sources import IMAGE, VIDEO, FolderSource, ImageSource, SourceKind, VideoSource, file_kind
from .video import VideoSink


@dataclass(frozen=True)
class Job:
    src: Path
    dst: Path
    #: IMAGE or VIDEO: how ``src`` is read, and (through ``SINKS``) how ``dst`` is written.
    kind: SourceKind
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


def _folder_jobs(folder: Path, out: Path | None, inputs: int, tag: str,
                 report: ApplyReport) -> list[Job]:
    """A folder's images and videos, mirrored under its output folder: ``-o`` itself for
    one input, a subfolder of it per input folder for several, else beside the folder."""
    if out is None:
        root = folder.parent / f"{folder.name}_{tag}"
    else:
        root = out if inputs == 1 else out / folder.name
    _refuse_inside(root, folder)
    source = FolderSource(folder)
    report.skipped.extend(source.skipped)
    return [Job(path, SINKS[kind].output_path(root / path.relative_to(folder)), kind, root)
            for path, kind in source.members]


def _named_output_job(path: Path, kind: SourceKind, out: Path) -> Job:
    """The job for one input file written to the file the user named."""
    if file_kind(out) is not kind:
        raise GantoolError(f"output {out} must be {kind.described} file for input {path.name}")
    return Job(path, out, kind, out.parent)


def _input_jobs(path: Path, out: Path | None, inputs: int, tag: str,
                report: ApplyReport) -> list[Job]:
    if path.is_dir():
        return _folder_jobs(path, out, inputs, tag, report)
    # A file of no known kind is read as an image, whose reader then says why it is not one.
    kind = file_kind(path) or IMAGE
    if out is not None and inputs == 1 and path.is_file() and out.suffix != "" and not out.is_dir():
        return [_named_output_job(path, kind, out)]
    folder = out or path.parent
    name = f"{path.stem}_{tag}{path.suffix}" if out is None else path.name
    return [Job(path, SINKS[kind].output_path(folder / name), kind, folder)]


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
    jobs = [job for p in paths for job in _input_jobs(p, out, len(paths), tag, report)]
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
    for kind, run in _RUNNERS:
        run(pipe, [job for job in jobs if job.kind is kind], report, options.progress, log)
    return report


def _described(info: ModelInfo, own_size: int | None) -> str:
    """The model, and the size its whole images run at."""
    if own_size is None or info.kind != "translation":
        return info.describe()
    return (f"{info.describe()}; whole images run at their own size, short side "
            f"{info.processing_size} to {own_size}px (--size N: one size for all)")


def _run_images(pipe: FramePipeline, jobs: list[Job], report: ApplyReport, progress: bool,
                log: Log) -> None:
    """Images in batches of the pipeline's size; a bad file fails alone."""
    from tqdm import tqdm

    bar = tqdm(total=len(jobs), unit="img", disable=not progress or not jobs, file=sys.stderr)
    step = pipe.batch_size
    for start in range(0, len(jobs), step):
        chunk = jobs[start : start + step]
        loaded = [(job, image) for job in chunk if (image := _read(job, report)) is not None]
        _translate_and_write(pipe, loaded, report)
        bar.update(len(chunk))
    bar.close()


def _read(job: Job, report: ApplyReport) -> np.ndarray | None:
    """The job's image, or None with the reason in ``report.failed``."""
    try:
        return ImageSource(job.src).image
    except ImageReadError as exc:
        report.failed.append((job.src, str(exc)))
    except OSError as exc:
        report.failed.append((job.src, f"unreadable ({exc.strerror or exc})"))
    return None


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
            ImageSink(job.dst).write(result)
            report.written.append((job.src, job.dst))
        except GantoolError as exc:
            report.failed.append((job.src, str(exc)))
        except (OSError, ValueError) as exc:
            report.failed.append((job.src, f"cannot write {job.dst}: {_short(exc)}"))


def _run_videos(pipe: FramePipeline, jobs: list[Job], report: ApplyReport, progress: bool,
                log: Log) -> None:
    """Videos one after another, each through the pipeline in order."""
    from .video import quiet_libav

    quiet_libav()
    for job in jobs:
        _run_video(pipe, job, report, progress, log)


def _run_video(pipe: FramePipeline, job: Job, report: ApplyReport, progress: bool,
               log: Log) -> None:
    try:
        check_inside_root(job)  # again at write time: folders may have changed since
        source = VideoSource(job.src)
    except GantoolError as exc:
        report.failed.append((job.src, str(exc)))
        return
    sink = VideoSink.open_for(job.dst, source, log)
    with source, _tracking_faces(pipe):
        problem = _encode_video(pipe, source, sink, progress)
    if problem is not None:
        report.failed.append((job.src, problem))
        return
    if sink.audio not in ("copied", "none"):
        log(f"{job.src.name}: audio {sink.audio}")
    report.written.append((job.src, job.dst))


@contextmanager
def _tracking_faces(pipe: FramePipeline) -> Iterator[None]:
    """Face boxes smoothed over one video's frames, from a fresh start."""
    from .faces import BoxSmoother

    pipe.reset()
    if pipe.faces is not None:
        pipe.faces.smoother = BoxSmoother()
    try:
        yield
    finally:
        if pipe.faces is not None:
            pipe.faces.smoother = None


def _encode_video(pipe: FramePipeline, source: VideoSource, sink: VideoSink,
                  progress: bool) -> str | None:
    """Every frame of ``source`` through ``pipe`` into ``sink``, finished; else why not
    (the unfinished file is then thrown away)."""
    from tqdm import tqdm

    declared = source.props.frames
    bar = tqdm(total=declared, unit="frame", desc=source.name, disable=not progress,
               file=sys.stderr, dynamic_ncols=True)
    finished = False
    try:
        for chunk in _batches(source, pipe.batch_size):
            for out in pipe.process(chunk):
                sink.write(out)
            bar.update(len(chunk))
        problem = _frame_count_problem(sink.frames, declared)
        if problem is None:
            sink.close()
            finished = True
        return problem
    except GantoolError as exc:
        return str(exc)
    except Exception as exc:
        return f"failed at frame {sink.frames}: {_short(exc)}"
    finally:
        bar.close()
        if not finished:
            sink.abort()


def _batches(source: VideoSource, size: int) -> Iterator[list[np.ndarray]]:
    chunk: list[np.ndarray] = []
    for frame in source:
        chunk.append(frame.image)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


#: How each kind of input file is run, in this order: images first (in batches), then videos.
_Runner = Callable[[FramePipeline, list[Job], ApplyReport, bool, Log], None]
_RUNNERS: tuple[tuple[SourceKind, _Runner], ...] = ((IMAGE, _run_images), (VIDEO, _run_videos))


def _frame_count_problem(decoded: int, declared: int | None) -> str | None:
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
