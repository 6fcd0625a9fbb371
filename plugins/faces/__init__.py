"""The built-in face detectors for face-aware mode (``--faces``), entry point ``haar``:
OpenCV's Haar cascade (:mod:`.haar`) and YuNet (:mod:`.yunet`). The core finds them only
through the registry, as it finds a third party's; a detector plugin looks exactly like
this package."""

from __future__ import annotations

import translator
from translator.specs import FaceDetectorSpec

from .haar import HaarDetector
from .yunet import YuNetDetector


@translator.hookimpl
def register_face_detectors(register):
    register(FaceDetectorSpec(
        "haar", "OpenCV frontal-face Haar cascade (ships with opencv-python 4.x; fast, frontal only)",
        HaarDetector))
    register(FaceDetectorSpec(
        "yunet", "OpenCV YuNet CNN (cv2.FaceDetectorYN); needs model=FILE.onnx (--face-model)",
        YuNetDetector))
