"""Face-aware mode: colour match, smoothing of face boxes over video (choosing a detector
is :mod:`translator.face_detectors`; alignment, the warp back and blending are in
:mod:`translator.face_align`).

Detectors come from plugins only (``register_face_detectors``; the built-in ones are in
``translator.plugins.faces``) and follow its contract: ``detect(bgr) -> [(x, y, w, h)]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

Box = tuple[int, int, int, int]

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

    def reset(self) -> None:
        self.tracks = []

    def current(self) -> list[Box]:
        """The tracks' boxes as they stand, for frames between detections."""
        return [tuple(int(round(v)) for v in t["box"]) for t in self.tracks]  # type: ignore[misc]

    def update(self, boxes: Sequence[Sequence[int]]) -> list[Box]:
        unmatched = list(self.tracks)
        new_tracks = []
        for box in boxes:
            b = np.asarray(box[:4], np.float64)
            best = max(unmatched, key=lambda t: _iou(t["box"], b), default=None)
            if best is not None and _iou(best["box"], b) >= self.min_iou:
                # By identity: list.remove compares dicts, whose numpy boxes have no truth value.
                unmatched = [t for t in unmatched if t is not best]
                b = self.alpha * b + (1 - self.alpha) * best["box"]
            new_tracks.append({"box": b, "missed": 0})
        for track in unmatched:
            if track["missed"] < self.hold:
                new_tracks.append({"box": track["box"], "missed": track["missed"] + 1})
        self.tracks = new_tracks
        return self.current()


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
