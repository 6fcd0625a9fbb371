"""OpenCV's frontal-face Haar cascade, the default detector of ``--faces``."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from translator.errors import GantoolError
from translator.runtime.faces import Box


class HaarDetector:
    """OpenCV's frontal-face Haar cascade (ships inside opencv-python 4.x; no download)."""

    def __init__(
        self,
        cascade: str | os.PathLike | None = None,
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
        min_size: int = 30,
    ) -> None:
        import cv2

        if cascade is None:
            # OpenCV's stubs do not declare cv2.data, and OpenCV 5 has none: look it up.
            haar_data = getattr(cv2, "data", None)
            if not hasattr(cv2, "CascadeClassifier") or haar_data is None:
                raise GantoolError(
                    "this OpenCV has no Haar cascades (OpenCV 5 dropped them); "
                    "install opencv-python<5 or use --face-model with a YuNet file"
                )
            cascade = Path(haar_data.haarcascades) / "haarcascade_frontalface_default.xml"
        cascade = Path(cascade)
        if not cascade.is_file():
            raise GantoolError(f"Haar cascade file not found: {cascade}")
        self.classifier = cv2.CascadeClassifier(str(cascade))
        if self.classifier.empty():
            raise GantoolError(f"not a Haar cascade file: {cascade}")
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_size = min_size

    def detect(self, bgr: np.ndarray) -> list[Box]:
        import cv2

        gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
        found = self.classifier.detectMultiScale(
            gray, self.scale_factor, self.min_neighbors, minSize=(self.min_size, self.min_size)
        )
        return [tuple(int(v) for v in b) for b in found]  # type: ignore[misc]
