"""Where frames come from: one :class:`Source` per input kind, and the table that picks it.

A source yields :class:`SourceFrame` s (RGB uint8, with the time in the stream) and says
what it knows of itself in :class:`SourceProps`. OpenCV's BGR stays inside this module.
Adding a kind (a stream URL, say) is one :class:`Source` subclass and one row of
:data:`SOURCE_KINDS`.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from translator.data.images import MAX_PIXELS_ENV, is_image_path, max_pixels, read_image
from translator.errors import GantoolError

VIDEO_EXTENSIONS = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"})

#: Frames per second assumed for a video whose header gives none (or nonsense).
FALLBACK_FPS = 25.0

#: What names a source: a camera index, or the path of a file or folder.
SourceSpec = int | str | os.PathLike


def is_video_path(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTENSIONS and not path.name.startswith(".")


def quiet_opencv() -> None:
    """OpenCV prints WARN/ERROR lines for missing cameras and bad files; we report those
    ourselves in one line. Its FFmpeg reads its log level from the environment when it
    first opens a video, so this must run before that."""
    import cv2

    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET

    try:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    except AttributeError:  # pragma: no cover - very old builds
        pass


class SourceFrame(NamedTuple):
    """One frame of a source: RGB uint8, and its time in seconds from the source's start
    (a file's presentation time, a camera's time since it opened; 0 for a still)."""

    image: np.ndarray
    time: float


@dataclass(frozen=True)
class SourceProps:
    """What a source knows of itself before its first frame; None where it cannot say."""

    width: int | None
    height: int | None
    fps: float | None = None
    frames: int | None = None
    #: Whether it carries sound (None: unknown, e.g. without PyAV to look).
    audio: bool | None = False
    #: A camera: frames arrive in real time, and a consumer that falls behind drops some.
    live: bool = False


class Source:
    """Frames from one input. Iterate it for its frames; close it (or use ``with``)."""

    #: How it is named in messages ("camera 0", a file's name).
    name: str
    props: SourceProps
    #: The file or folder it reads (None for a camera).
    path: Path | None = None
    #: Seconds without a frame after which a stream from it counts as stalled.
    stall_timeout: float = 30.0

    def __iter__(self) -> Iterator[SourceFrame]:
        raise NotImplementedError

    def close(self) -> None:
        """Let go of the file or device."""

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ImageSource(Source):
    """One image file, decoded by :func:`translator.data.images.read_image` (its pixel cap
    and decoding rules) when the source is made; raises its ``ImageReadError``."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.name = self.path.name
        self.image = read_image(self.path)
        height, width = self.image.shape[:2]
        self.props = SourceProps(width, height, frames=1)

    def __iter__(self) -> Iterator[SourceFrame]:
        yield SourceFrame(self.image, 0.0)


def check_frame_pixels(name: str, width: int, height: int) -> None:
    """Refuse video ``name`` when its frames are over the pixel cap."""
    pixels, cap = width * height, max_pixels()
    if pixels > cap:
        raise GantoolError(f"video {name} is too large ({width}x{height} = {pixels:,} pixels "
                           f"a frame; the limit is {cap:,}, set by {MAX_PIXELS_ENV})")


def _has_audio(path: Path) -> bool | None:
    """Whether the file has an audio track; None when PyAV is missing or cannot tell."""
    try:
        import av
    except ImportError:
        return None
    try:
        with av.open(str(path)) as container:
            return bool(container.streams.audio)
    except (av.FFmpegError, ValueError):
        return None


class VideoSource(Source):
    """A video file's frames in order, read by OpenCV (its FFmpeg)."""

    def __init__(self, path: str | os.PathLike) -> None:
        import cv2

        quiet_opencv()
        self.path = Path(path)
        self.name = self.path.name
        if not self.path.is_file():
            raise GantoolError(f"video file not found: {self.path}")
        if self.path.stat().st_size == 0:
            raise GantoolError(f"{self.path} is an empty file (0 bytes), not a video")
        self.cap = cv2.VideoCapture(str(self.path))
        if not self.cap.isOpened():
            raise GantoolError(f"cannot open video {self.path} (not a video OpenCV can read, "
                               "or one without a single frame)")
        width = int(self.cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(self.cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        try:
            check_frame_pixels(self.name, width, height)
        except GantoolError:
            self.cap.release()
            raise
        fps = self.cap.get(cv2.CAP_PROP_FPS)
        self.props = SourceProps(
            width, height, fps=fps if fps and 0 < fps < 1000 else FALLBACK_FPS,
            frames=max(0, int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT))) or None,
            audio=_has_audio(self.path))

    def __iter__(self) -> Iterator[SourceFrame]:
        index, fps = 0, self.props.fps or FALLBACK_FPS
        while True:
            ok, frame = self.cap.read()
            if not ok or frame is None:  # a file's first failed read is its end
                return
            yield SourceFrame(frame[..., ::-1].copy(), index / fps)
            index += 1

    def close(self) -> None:
        self.cap.release()


def open_camera(index: int, timeout: float = 5.0) -> Any:
    """An opened ``cv2.VideoCapture`` for camera ``index``, or a clear error within
    ``timeout`` seconds (some backends block for long on a missing device)."""
    import cv2

    quiet_opencv()
    box: dict[str, Any] = {}

    def _open() -> None:
        cap = cv2.VideoCapture(index)
        box["cap"] = cap

    t = threading.Thread(target=_open, daemon=True, name="gantool-camera-open")
    t.start()
    t.join(timeout)
    cap = box.get("cap")
    if cap is None:
        raise GantoolError(f"camera {index} did not open within {timeout:.0f} s")
    if not cap.isOpened():
        cap.release()
        raise GantoolError(
            f"cannot open camera {index} (no camera at that index, or it is in use); "
            "try --camera N or --source VIDEO"
        )
    return cap


@dataclass(frozen=True)
class CameraOptions:
    """How a camera is opened and when it counts as gone."""

    #: Seconds to wait for the device to open.
    open_timeout: float = 5.0
    #: Seconds without a frame after which the camera counts as stopped.
    frame_timeout: float = 5.0
    #: Failed reads in a row after which the camera counts as ended (one may hiccup).
    max_failures: int = 10


class CameraSource(Source):
    """A camera's frames as they come; opened (through :func:`open_camera`) when made."""

    def __init__(self, index: int = 0, options: CameraOptions = CameraOptions()) -> None:
        import cv2

        self.index, self.options, self.name = index, options, f"camera {index}"
        self.stall_timeout = options.frame_timeout
        self.cap = open_camera(index, options.open_timeout)
        self.cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the driver's own queue adds latency too
        fps = self.cap.get(cv2.CAP_PROP_FPS)
        self.props = SourceProps(int(self.cap.get(cv2.CAP_PROP_FRAME_WIDTH)) or None,
                                 int(self.cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) or None,
                                 fps=fps if 0 < fps < 1000 else None, frames=None, live=True)
        self.opened_at = time.perf_counter()

    def __iter__(self) -> Iterator[SourceFrame]:
        failures = 0
        while failures < self.options.max_failures:
            ok, frame = self.cap.read()
            if not ok or frame is None:
                failures += 1
                time.sleep(0.01)
                continue
            failures = 0
            yield SourceFrame(frame[..., ::-1].copy(), time.perf_counter() - self.opened_at)

    def close(self) -> None:
        self.cap.release()


class FolderSource(Source):
    """The images and videos under a folder, in sorted order, hidden entries left out; its
    frames are theirs in turn. Links to folders are not followed (they can loop)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.name = self.path.name
        #: (file, its kind) for every image and video under the folder.
        self.members: list[tuple[Path, SourceKind]] = []
        #: (path, why) for what is neither, and for links that lead nowhere or to a folder.
        self.skipped: list[tuple[Path, str]] = []
        for found in sorted(self.path.rglob("*")):
            if not any(p.startswith(".") for p in found.relative_to(self.path).parts):
                self._add(found)
        kinds = {kind for _, kind in self.members}
        self.props = SourceProps(None, None, frames=len(self.members) if kinds <= {IMAGE} else None,
                                 audio=None if VIDEO in kinds else False)

    def _add(self, path: Path) -> None:
        if path.is_symlink() and not path.is_file():
            why = "a link to a folder (not followed)" if path.is_dir() else "a broken or looping link"
            self.skipped.append((path, why))
        elif path.is_file():
            kind = file_kind(path)
            if kind is None:
                self.skipped.append((path, "not an image or video file"))
            else:
                self.members.append((path, kind))

    def __iter__(self) -> Iterator[SourceFrame]:
        for path, kind in self.members:
            with kind.open(path) as member:
                yield from member


@dataclass(frozen=True)
class SourceKind:
    """A row of :data:`SOURCE_KINDS`: what a kind of input is and how it is opened."""

    name: str
    #: Whether a spec (a camera index, a path) names an input of this kind.
    matches: Callable[[SourceSpec], bool]
    open: Callable[[Any], Source]
    #: How a file of this kind is described to the user ("an image (.png, .jpg, ...)").
    described: str


def _is_camera(spec: SourceSpec) -> bool:
    return isinstance(spec, int) and not isinstance(spec, bool)


def _names_folder(spec: SourceSpec) -> bool:
    return not isinstance(spec, int) and Path(spec).is_dir()


def _names_video(spec: SourceSpec) -> bool:
    return not isinstance(spec, int) and is_video_path(Path(spec))


def _names_image(spec: SourceSpec) -> bool:
    return not isinstance(spec, int) and is_image_path(Path(spec))


CAMERA = SourceKind("camera", _is_camera, CameraSource, "a camera index")
FOLDER = SourceKind("folder", _names_folder, FolderSource, "a folder")
VIDEO = SourceKind("video", _names_video, VideoSource, "a video (.mp4, .avi)")
IMAGE = SourceKind("image", _names_image, ImageSource, "an image (.png, .jpg, ...)")

#: Tried in order; the first whose ``matches`` says yes opens the input.
SOURCE_KINDS: tuple[SourceKind, ...] = (CAMERA, FOLDER, VIDEO, IMAGE)


def source_kind(spec: SourceSpec, fallback: SourceKind | None = None) -> SourceKind | None:
    """The kind of input ``spec`` names; ``fallback`` when no row matches."""
    return next((kind for kind in SOURCE_KINDS if kind.matches(spec)), fallback)


def file_kind(path: Path) -> SourceKind | None:
    """VIDEO or IMAGE by a file's name; None for any other name."""
    return next((kind for kind in (VIDEO, IMAGE) if kind.matches(path)), None)


def open_source(spec: SourceSpec, fallback: SourceKind | None = None) -> Source:
    """The source ``spec`` names, opened; a spec of no known kind is opened as ``fallback``."""
    kind = source_kind(spec, fallback)
    if kind is None:
        raise GantoolError(f"{spec} is not an image, video, folder or camera index")
    return kind.open(spec)
