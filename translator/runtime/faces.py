"""Face-aware mode: colour match, smoothing of face boxes over video (choosing a detector
is :mod:`translator.face_detectors`; alignment, the warp back and blending are in
:mod:`translator.face_align`).

Detectors come from plugins only (``register_face_detectors``; the built-in ones are in
``translator.plugins.faces``) and follow its contract: ``detect(bgr) -> [(x, y, w, h)]``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from translator.errors import GantoolError

Box = tuple[int, int, int, int]
#: A face as tracked over a video: its track's id and its box.
Tracked = tuple[int, Box]

def color_match(image: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Move ``image``'s per-channel mean and spread in Lab to ``reference``'s (Reinhard)."""
    import cv2

    src = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float32)
    ref = cv2.cvtColor(reference, cv2.COLOR_RGB2LAB).astype(np.float32)
    s_mean, s_std = src.mean(axis=(0, 1)), src.std(axis=(0, 1)) + 1e-6
    r_mean, r_std = ref.mean(axis=(0, 1)), ref.std(axis=(0, 1))
    out = (src - s_mean) * (r_std / s_std) + r_mean
    return cv2.cvtColor(np.clip(out, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)


class BoxSmoother:
    """Steadies face boxes over video frames.

    Each detection is matched to the previous frame's track with the highest overlap and
    averaged with it (exponential moving average); a track missed for a few frames keeps its
    last box, so a single missed detection does not make the swap flicker off and on.
    """

    def __init__(self, alpha: float = 0.4, min_iou: float = 0.3, hold: int = 3) -> None:
        self.alpha, self.min_iou, self.hold = alpha, min_iou, hold
        self.tracks: list[dict[str, Any]] = []
        # Ids are never reused, not even after a reset: a face after a cut is a new face.
        self._ids = itertools.count()

    def reset(self) -> None:
        self.tracks = []

    def current(self) -> list[Box]:
        """The tracks' boxes as they stand, for frames between detections."""
        return [box for _, box in self.tracked()]

    def tracked(self) -> list[Tracked]:
        """Each track's id (the same for one face over the frames it is followed) and box."""
        return [(t["id"], tuple(int(round(v)) for v in t["box"])) for t in self.tracks]  # type: ignore[misc]

    def update(self, boxes: Sequence[Sequence[int]]) -> list[Box]:
        """Match this detection's boxes to the tracks: by overlap (then averaged), else the
        nearest track whose face could have moved there since (within its own size; then
        the new box as it is, so a fast face is not trailed). A track no box matched is
        held for ``hold`` detections, unless a box lies over it: the face there moved,
        it was not missed, and a held copy would paste a second face beside it."""
        unmatched = list(self.tracks)
        new_tracks: list[dict[str, Any]] = []
        for box in boxes:
            b = np.asarray(box[:4], np.float64)
            track, overlapping = self._match(unmatched, b)
            if track is not None:
                # By identity: list.remove compares dicts, whose numpy boxes have no truth value.
                unmatched = [t for t in unmatched if t is not track]
                if overlapping:
                    b = self.alpha * b + (1 - self.alpha) * track["box"]
            new_tracks.append({"box": b, "missed": 0,
                               "id": next(self._ids) if track is None else track["id"]})
        for track in unmatched:
            covered = any(_iou(track["box"], t["box"]) > 0 for t in new_tracks if t["missed"] == 0)
            if track["missed"] < self.hold and not covered:
                new_tracks.append({**track, "missed": track["missed"] + 1})
        self.tracks = new_tracks
        return self.current()

    def _match(self, tracks: list[dict[str, Any]], b: np.ndarray) -> tuple[dict[str, Any] | None, bool]:
        """The track ``b`` continues and whether it overlaps it, or (None, False)."""
        best = max(tracks, key=lambda t: _iou(t["box"], b), default=None)
        if best is not None and _iou(best["box"], b) >= self.min_iou:
            return best, True
        nearest = min(tracks, key=lambda t: _centre_distance(t["box"], b), default=None)
        if nearest is not None and _centre_distance(nearest["box"], b) < max(nearest["box"][2:4]):
            return nearest, False
        return None, False


class CutDetector:
    """Says when a frame starts a new shot: its small grey thumbnail differs from the
    previous frame's by more than ``threshold`` (mean absolute difference, 0-255).

    Tracked face boxes belong to one shot: held past a cut, they paste a translated patch
    where a face used to be. A person moving, talking or turning changes the thumbnail
    far less than a cut does (on a 32x18 thumbnail: a few levels against tens)."""

    SIZE = (32, 18)

    def __init__(self, threshold: float = 30.0) -> None:
        self.threshold = threshold
        self.previous: np.ndarray | None = None

    def reset(self) -> None:
        self.previous = None

    def is_cut(self, rgb: np.ndarray) -> bool:
        import cv2

        small = cv2.resize(rgb, self.SIZE, interpolation=cv2.INTER_AREA)
        thumb = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.int16)
        previous, self.previous = self.previous, thumb
        return previous is not None and float(np.abs(thumb - previous).mean()) > self.threshold


def _largest(faces: Sequence[Tracked]) -> Tracked:
    return max(faces, key=lambda f: f[1][2] * f[1][3])


def _leftmost(faces: Sequence[Tracked]) -> Tracked:
    return min(faces, key=lambda f: f[1][0] + f[1][2] / 2)


def _rightmost(faces: Sequence[Tracked]) -> Tracked:
    return max(faces, key=lambda f: f[1][0] + f[1][2] / 2)


#: ``--face`` words that pick one face of those in view (``N`` picks the N-th from the left).
ONE_FACE_RULES: dict[str, Callable[[Sequence[Tracked]], Tracked]] = {
    "largest": _largest, "left": _leftmost, "right": _rightmost}
#: ``--face`` words that pick every face read as that gender.
GENDERS = ("female", "male")
FACE_CHOICES = ("all", *ONE_FACE_RULES, "N", *GENDERS)


@dataclass(frozen=True)
class FaceChoice:
    """Which faces of a frame are translated (``--face``): all; one (the largest, the
    leftmost, the rightmost, the N-th from the left), followed from then on; or every
    face the detector reads as one gender."""

    rule: str = "all"
    #: For ``rule == "N"``: which face from the left, from 1.
    index: int = 0

    @classmethod
    def parse(cls, text: str) -> FaceChoice:
        word = text.strip().lower()
        if word.isdigit() and int(word) >= 1:
            return cls("N", int(word))
        if word in FACE_CHOICES and word != "N":
            return cls(word)
        raise GantoolError(f"--face {text}: choose all, largest, left, right, female, male, "
                           "or a number N (the N-th face from the left, from 1)")

    @property
    def follows_one(self) -> bool:
        return self.rule in ONE_FACE_RULES or self.rule == "N"

    def first_pick(self, faces: Sequence[Tracked]) -> Tracked | None:
        """The one face this choice picks among ``faces`` (none in view: None)."""
        if not faces:
            return None
        if self.rule == "N":
            by_x = sorted(faces, key=lambda f: f[1][0] + f[1][2] / 2)
            return by_x[self.index - 1] if self.index <= len(by_x) else None
        return ONE_FACE_RULES[self.rule](faces)


#: Reads a face's gender: (BGR frame, box) -> "female" or "male". Detectors that can
#: offer it as a ``gender(bgr, box)`` method, as they offer ``landmarks``.
GenderReader = Callable[[np.ndarray, Box], str]


def check_choice(choice: FaceChoice, read_gender: GenderReader | None) -> None:
    """Raise one line when ``choice`` picks by gender and nothing can read it."""
    if choice.rule in GENDERS and read_gender is None:
        raise GantoolError(f"--face {choice.rule} needs a face detector that reads gender "
                           "(--detector dlib, from pip install \"gantool[faces]\", or a "
                           "plugin's detector with a gender(bgr, box) method)")


@dataclass
class FaceSelector:
    """Applies a :class:`FaceChoice` over a video: a face once picked is followed by its
    track id until it leaves (then the choice is made again among those in view), and a
    face's gender is read once per track, so the choice never jumps between people."""

    choice: FaceChoice
    read_gender: GenderReader | None = None
    chosen: int | None = None
    genders: dict[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_choice(self.choice, self.read_gender)

    def reset(self) -> None:
        self.chosen = None
        self.genders.clear()

    def select(self, faces: Sequence[Tracked], bgr: np.ndarray | None = None) -> list[Box]:
        """The boxes of ``faces`` to translate; ``bgr`` is the frame (for reading gender)."""
        if self.choice.rule == "all":
            return [box for _, box in faces]
        if self.choice.rule in GENDERS:
            return [box for track, box in faces if self._gender(track, box, bgr) == self.choice.rule]
        followed = [f for f in faces if f[0] == self.chosen]
        picked = followed[0] if followed else self.choice.first_pick(faces)
        self.chosen = None if picked is None else picked[0]
        return [] if picked is None else [picked[1]]

    def _gender(self, track: int, box: Box, bgr: np.ndarray | None) -> str | None:
        if track not in self.genders and bgr is not None and self.read_gender is not None:
            self.genders[track] = self.read_gender(bgr, box)
        return self.genders.get(track)


def _centre_distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.hypot(a[0] + a[2] / 2 - b[0] - b[2] / 2, a[1] + a[3] / 2 - b[1] - b[3] / 2))


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0.0, min(ax1, bx1) - max(a[0], b[0]))
    ih = max(0.0, min(ay1, by1) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return float(inter / union) if union > 0 else 0.0


def detect_rgb(detector: Any, frame: np.ndarray) -> list[Box]:
    """Run a detector (which takes BGR, like all of OpenCV) on an RGB frame."""
    bgr = np.ascontiguousarray(frame[..., ::-1])
    return [tuple(int(v) for v in box[:4]) for box in detector.detect(bgr)]  # type: ignore[misc]


def detect_scaled(detector: Any, rgb: np.ndarray, max_side: int | None = None) -> list[Box]:
    """Faces of an RGB frame, detected on a copy whose long side is at most ``max_side``
    (detection time grows with the pixel count); boxes are in the frame's coordinates."""
    import cv2

    h, w = rgb.shape[:2]
    scale = 1.0 if not max_side or max(h, w) <= max_side else max_side / max(h, w)
    if scale == 1.0:
        return detect_rgb(detector, rgb)
    small = cv2.resize(rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    return [tuple(int(round(v / scale)) for v in box) for box in detect_rgb(detector, small)]  # type: ignore[misc]
