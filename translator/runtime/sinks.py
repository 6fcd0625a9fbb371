"""Where frames go: one :class:`Sink` per output kind, written atomically (a failed or
interrupted write never leaves a half file under the real name).

:data:`SINKS` says what the frames of each kind of source are written as: an image's as
an image in its own format (PNG where that format cannot be written), a video's as a
video with the source's sound.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

from translator.safe_write import atomic_path

from .session import Log
from .sources import IMAGE, VIDEO, Source, SourceKind
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


#: What each kind of input file's frames are written as (a folder's by its members' kinds).
SINKS: dict[SourceKind, type[ImageSink] | type[VideoSink]] = {IMAGE: ImageSink, VIDEO: VideoSink}
