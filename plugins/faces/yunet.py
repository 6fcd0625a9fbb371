"""OpenCV's YuNet CNN face detector, for ``--faces --face-model FILE.onnx``."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from translator.errors import GantoolError
from translator.runtime.faces import Box


class YuNetDetector:
    """OpenCV's YuNet CNN detector (``cv2.FaceDetectorYN``); needs its ``.onnx`` model file,
    which no wheel ships (``face_detection_yunet_2023mar.onnx`` from the OpenCV model zoo)."""

    def __init__(
        self,
        model: str | os.PathLike | None = None,
        score_threshold: float = 0.7,
        nms_threshold: float = 0.3,
    ) -> None:
        import cv2

        if model is None:
            raise GantoolError("the yunet face detector needs a model file (--face-model FILE)")
        model = Path(model)
        if not model.is_file():
            raise GantoolError(f"YuNet model file not found: {model}")
        try:
            self.detector = cv2.FaceDetectorYN.create(
                str(model), "", (320, 320), score_threshold, nms_threshold
            )
            # A wrong ONNX file loads fine and fails only on the first frame: try one now.
            self.detector.setInputSize((64, 64))
            self.detector.detect(np.zeros((64, 64, 3), np.uint8))
        except cv2.error as exc:
            raise GantoolError(f"cannot use {model.name} as a YuNet face model ({_cv_reason(exc)})") from None
        self._size: tuple[int, int] | None = None

    def detect(self, bgr: np.ndarray) -> list[Box]:
        h, w = bgr.shape[:2]
        if self._size != (w, h):
            self.detector.setInputSize((w, h))
            self._size = (w, h)
        _, faces = self.detector.detect(bgr)
        if faces is None:
            return []
        return [tuple(int(round(v)) for v in f[:4]) for f in faces]  # type: ignore[misc]


def _cv_reason(exc: Exception) -> str:
    """The human part of an OpenCV error: ``... error: (-2:Unspecified error) WHY in function``."""
    import re

    match = re.search(r"error: \(-?\d+:[^)]*\) (.*?)(?: in function .*)?$", str(exc).strip(), re.S)
    return (match.group(1) if match else str(exc).strip().splitlines()[-1])[:160]
