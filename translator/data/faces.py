"""Training images of faces, aligned as the runtime aligns them (``--align-faces``).

Each image is read, its largest face found by a face detector plugin, and warped onto
:data:`translator.face_align.TEMPLATE`; :class:`translator.data.pipeline.DecodeCache` then
keeps the result, so each image is aligned once per run. An image without a detected face
is kept as its centre square, unaligned.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from . import ImageList
from .pipeline import resize_square


@lru_cache(maxsize=1)
def alignment_detector() -> str:
    """The name of the detector that aligns training faces: the one face mode takes by
    default. Found once per process (finding it loads the detector's models)."""
    from ..face_detectors import default_detector

    return default_detector()[0]


class AlignedReader:
    """An :class:`ImageList` loader: read, then align the largest face to a ``side`` square.
    The detector is made in the process that reads (data loader workers make their own)."""

    def __init__(self, read: Callable[[Path], np.ndarray], side: int, detector: str) -> None:
        self.read, self.side, self.detector_name = read, side, detector
        self._detector: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_detector": None}

    def align(self, rgb: np.ndarray) -> np.ndarray:
        from ..face_align import align_face, find_face
        from ..face_detectors import create_detector

        if self._detector is None:
            self._detector = create_detector(self.detector_name)
        landmarks = find_face(self._detector, rgb)
        if landmarks is None:
            return resize_square(rgb, self.side)
        return align_face(rgb, landmarks, self.side).crop

    def __call__(self, path: Path) -> np.ndarray:
        return self.align(self.read(path))


def aligned_list(images: ImageList, side: int, detector: str) -> ImageList:
    """``images`` with every face aligned at ``side`` px (files when read, arrays now)."""
    reader = AlignedReader(images.loader, side, detector)
    items = [reader.align(item) if isinstance(item, np.ndarray) else item for item in images.items]
    return dataclasses.replace(images, items=items, loader=reader,
                               description=f"{images.description}, faces aligned".lstrip(", "))
