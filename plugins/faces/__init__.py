"""``translator.plugins.faces``: the built-in face plugins, entry point ``haar``: the face
detectors of face-aware mode (``--faces``) and of ``--align-faces`` (OpenCV's Haar cascade,
:mod:`.haar`; YuNet, :mod:`.yunet`; dlib's HOG detector with five landmarks, :mod:`.dlib_faces`), and the
independent gender judge of ``gantool evaluate`` (:mod:`.judge`). The core finds them only
through the registry, as it finds a third party's; a detector plugin looks exactly like
this package."""

from __future__ import annotations

import translator
from translator.specs import FaceDetectorSpec, FigureSpec

from .haar import HaarDetector
from .yunet import YuNetDetector


def _dlib_detector(**options):
    from .dlib_faces import DlibDetector  # dlib is the optional `faces` extra

    return DlibDetector(**options)


def _face_figure(run, column):
    from .judge import face_figure

    return face_figure(run, column)


@translator.hookimpl
def register_face_detectors(register):
    register(FaceDetectorSpec(
        "dlib", 'dlib HOG detector with 5 landmarks (pip install "gantool[faces]"; the '
        "default when installed)", _dlib_detector))
    register(FaceDetectorSpec(
        "haar", "OpenCV frontal-face Haar cascade (ships with opencv-python 4.x; fast, frontal only)",
        HaarDetector))
    register(FaceDetectorSpec(
        "yunet", "OpenCV YuNet CNN (cv2.FaceDetectorYN); needs model=FILE.onnx (--face-model)",
        YuNetDetector))


@translator.hookimpl
def register_figures(register):
    register(FigureSpec(
        "faces", "gender swaps read by dlib's CC0 gender network and face embeddings: share "
        "read as the target gender, the judge's accuracy on the inputs, identity kept",
        _face_figure))
