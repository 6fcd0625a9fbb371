"""Built-in face detectors for face-aware mode (``--faces``): OpenCV's Haar cascade and
YuNet. A third-party detector plugin looks exactly like this module."""

from __future__ import annotations

from typing import Any

import translator
from translator.specs import FaceDetectorSpec


def _haar(**options: Any) -> Any:
    from translator.runtime.faces import HaarDetector

    return HaarDetector(**options)


def _yunet(**options: Any) -> Any:
    from translator.runtime.faces import YuNetDetector

    return YuNetDetector(**options)


@translator.hookimpl
def register_face_detectors(register):
    register(
        FaceDetectorSpec(
            "haar",
            "OpenCV frontal-face Haar cascade (ships with opencv-python 4.x; fast, frontal only)",
            _haar,
        )
    )
    register(
        FaceDetectorSpec(
            "yunet",
            "OpenCV YuNet CNN (cv2.FaceDetectorYN); needs model=FILE.onnx (--face-model)",
            _yunet,
        )
    )
