"""Where frames go: one :class:`Sink` per output kind, written atomically (a failed or
interrupted write never leaves a half file under the real name).

:data:`SINKS` says what the frames of each kind of source are written as: an image's as
an image in its own format (PNG where that format cannot be written), a video's as a
video with the source's sound.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from translator.errors import GantoolError
from translator.safe_write import atomic_path

from .session import Log
from .sources import FALLBACK_FPS, IMAGE, VIDEO, Source, SourceKind
from .video import VideoSink

# Formats written as themselves; any other image input is written as PNG.
WRITABLE_IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"})


class Sink(Protocol):
    """Frames (RGB uint8) in; the finished file at ``path`` once :meth:`close` returns."""

    path: Path
    frames: int

    def write(self, frame: np.ndarray) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...


class ImageSink:
    """An image file; each frame written replaces it, atomically, in the format its name
    says (JPEG and WebP at quality 95)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.frames = 0

    @classmethod
    def output_path(cls, path: Path) -> Path:
        """Where an image made from ``path`` is written: in its format when that can be
        written, else as PNG."""
        return path if path.suffix.lower() in WRITABLE_IMAGE_EXTENSIONS else path.with_suffix(".png")

    @classmethod
    def open_for(cls, path: Path, source: Source, log: Log | None = None) -> ImageSink:
        return cls(path)

    def write(self, frame: np.ndarray) -> None:
        from PIL import Image

        options: dict[str, Any] = {}
        if self.path.suffix.lower() in (".jpg", ".jpeg", ".webp"):
            options["quality"] = 95
        with atomic_path(self.path) as tmp:
            Image.fromarray(frame).save(tmp, **options)
        self.frames += 1

    def close(self) -> None:
        """Nothing left to do: each frame was written in full."""

    def abort(self) -> None:
        """Nothing to throw away: a frame is written whole or not at all."""


#: How to get a virtual camera for pyvirtualcam to send to, by platform.
VIRTUAL_CAMERA_HOWTO = {
    "linux": "install v4l2loopback (e.g. sudo apt install v4l2loopback-dkms) and load it: "
             "sudo modprobe v4l2loopback devices=1 exclusive_caps=1 card_label=gantool",
    "win32": "install OBS Studio (28 or later) and start its virtual camera once",
    "darwin": "install OBS Studio (28 or later) and start its virtual camera once",
}


def virtual_camera_howto() -> str:
    return VIRTUAL_CAMERA_HOWTO.get(sys.platform, VIRTUAL_CAMERA_HOWTO["linux"])


def open_pyvirtualcam(width: int, height: int, fps: float) -> Any:
    """A pyvirtualcam camera taking RGB frames of ``width`` x ``height`` at ``fps``, on the
    backend pyvirtualcam finds (v4l2loopback on Linux, OBS's virtual camera elsewhere)."""
    import pyvirtualcam  # type: ignore[import-not-found]  # the vcam extra

    try:
        return pyvirtualcam.Camera(width, height, fps, fmt=pyvirtualcam.PixelFormat.RGB)
    except (RuntimeError, KeyError, OSError) as exc:  # KeyError: a backend it does not know
        why = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
        raise GantoolError(f"--virtual-camera: no virtual camera to send to ({why}); "
                           f"{virtual_camera_howto()}") from None


def check_pyvirtualcam() -> None:
    """Raise one clear line when pyvirtualcam is not installed."""
    try:
        import pyvirtualcam  # noqa: F401
    except ImportError:
        raise GantoolError('--virtual-camera needs pyvirtualcam: pip install "gantool[vcam]"; '
                           f"then {virtual_camera_howto()}") from None


class VirtualCameraSink:
    """Frames to a virtual camera that video-call and streaming apps can pick, at the size
    of the first frame and the source's frame rate. Opened on the first frame, when its
    size is known; ``opener`` makes the camera (pyvirtualcam, or a stand-in)."""

    def __init__(self, fps: float, opener: Callable[[int, int, float], Any] | None = None,
                 log: Log | None = None) -> None:
        self.fps, self.opener, self.log = fps, opener or open_pyvirtualcam, log
        self.frames = 0
        self.camera: Any = None
        #: The device frames go to, once open (e.g. /dev/video2, "OBS Virtual Camera").
        self.path = Path("virtual camera")

    @classmethod
    def open_for(cls, source: Source, log: Log | None = None) -> VirtualCameraSink:
        """A sink at ``source``'s frame rate; raises one line when pyvirtualcam is missing."""
        check_pyvirtualcam()
        return cls(source.props.fps or FALLBACK_FPS, log=log)

    def write(self, frame: np.ndarray) -> None:
        if self.camera is None:
            self.camera = self.opener(frame.shape[1], frame.shape[0], self.fps)
            self.path = Path(str(getattr(self.camera, "device", "virtual camera")))
            if self.log is not None:
                self.log(f"Sending to the virtual camera {self.path} "
                         f"({frame.shape[1]}x{frame.shape[0]} at {self.fps:g} FPS)")
        self.camera.send(np.ascontiguousarray(frame))
        self.frames += 1

    def close(self) -> None:
        if self.camera is not None:
            self.camera.close()
            self.camera = None

    def abort(self) -> None:
        """A camera has nothing to throw away: let go of it."""
        self.close()


#: What each kind of input file's frames are written as (a folder's by its members' kinds).
SINKS: dict[SourceKind, type[ImageSink] | type[VideoSink]] = {IMAGE: ImageSink, VIDEO: VideoSink}
