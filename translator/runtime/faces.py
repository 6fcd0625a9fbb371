"""Face-aware mode: cropping, blending back, colour match, smoothing of face boxes.

Detectors come from plugins only (``register_face_detectors``; the built-in ones are in
``translator.plugins.faces``) and follow its contract: ``detect(bgr) -> [(x, y, w, h)]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

Box = tuple[int, int, int, int]

#: The detector ``--faces`` and ``gantool serve`` use when none is named.
DEFAULT_DETECTOR = "haar"


def create_detector(name: str = DEFAULT_DETECTOR, **options: Any) -> Any:
    """The face detector a plugin registered under ``name`` (the built-in faces plugin
    registers ``haar`` and ``yunet``), made with ``options``."""
    from translator.registry import get_registry

    return get_registry().face_detector(name).create(**options)


def face_crop_box(box: Sequence[int], margin: float, shape: Sequence[int]) -> Box:
    """A square crop (x0, y0, x1, y1) around a face box with ``margin`` of context on each
    side, clipped to the frame."""
    x, y, w, h = box[:4]
    side = max(w, h) * (1 + 2 * margin)
    cx, cy = x + w / 2, y + h / 2
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    x1, y1 = int(round(cx + side / 2)), int(round(cy + side / 2))
    height, width = shape[0], shape[1]
    return max(0, x0), max(0, y0), min(width, x1), min(height, y1)


def feather_mask(height: int, width: int, feather: float = 0.2) -> np.ndarray:
    """``[H, W, 1]`` float32 weights: 1 in the middle, easing to 0 at the crop's edges, so
    the translated crop fades into the frame without a visible seam."""

    def ramp(n: int) -> np.ndarray:
        band = max(1.0, feather * n)
        d = np.minimum(np.arange(n) + 0.5, n - np.arange(n) - 0.5) / band
        t = np.clip(d, 0.0, 1.0)
        return t * t * (3 - 2 * t)  # smoothstep: no kink where the ramp meets the plateau

    return (ramp(height)[:, None] * ramp(width)[None, :])[..., None].astype(np.float32)


def color_match(image: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Move ``image``'s per-channel mean and spread in Lab to ``reference``'s (Reinhard)."""
    import cv2

    src = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float32)
    ref = cv2.cvtColor(reference, cv2.COLOR_RGB2LAB).astype(np.float32)
    s_mean, s_std = src.mean(axis=(0, 1)), src.std(axis=(0, 1)) + 1e-6
    r_mean, r_std = ref.mean(axis=(0, 1)), ref.std(axis=(0, 1))
    out = (src - s_mean) * (r_std / s_std) + r_mean
    return cv2.cvtColor(np.clip(out, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)


def blend_face(
    frame: np.ndarray,
    translated: np.ndarray,
    rect: Box,
    options: Any,
    original_crop: np.ndarray | None = None,
) -> np.ndarray:
    """Put a translated crop back into ``frame`` at ``rect`` = (x0, y0, x1, y1).

    Only pixels inside ``rect`` can change. ``options`` is a :class:`FaceOptions`.
    """
    if options.color_match and original_crop is not None:
        translated = color_match(translated, original_crop)
    if options.blend == "poisson":
        out = _poisson(frame, translated, rect)
        if out is not None:
            return out
    x0, y0, x1, y1 = rect
    mask = feather_mask(y1 - y0, x1 - x0, options.feather)
    region = frame[y0:y1, x0:x1].astype(np.float32)
    mixed = region + (translated.astype(np.float32) - region) * mask
    out = frame.copy()
    out[y0:y1, x0:x1] = np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
    return out


def _poisson(frame: np.ndarray, translated: np.ndarray, rect: Box) -> np.ndarray | None:
    """``cv2.seamlessClone``, or None when it cannot run (the caller then feathers).

    seamlessClone asserts when the mask touches the source's border or its region leaves
    the destination, so the mask is inset and placed so that OpenCV's own centring
    (``center - size / 2``) lands exactly on ``rect``.
    """
    import cv2

    x0, y0, x1, y1 = rect
    h, w = y1 - y0, x1 - x0
    inset = max(2, int(0.06 * min(h, w)))
    if h - 2 * inset < 4 or w - 2 * inset < 4:
        return None
    mask = np.zeros((h, w), np.uint8)
    # An elliptical mask keeps the frame's own hair and background at the crop's corners.
    cv2.ellipse(mask, (w // 2, h // 2), (w // 2 - inset, h // 2 - inset), 0, 0, 360, 255, -1)
    mask[:inset], mask[h - inset :], mask[:, :inset], mask[:, w - inset :] = 0, 0, 0, 0
    bx, by, bw, bh = cv2.boundingRect(mask)
    center = (x0 + bx + bw // 2, y0 + by + bh // 2)
    try:
        return cv2.seamlessClone(
            np.ascontiguousarray(translated),
            np.ascontiguousarray(frame),
            mask,
            center,
            cv2.NORMAL_CLONE,
        )
    except cv2.error:
        return None


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


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0.0, min(ax1, bx1) - max(a[0], b[0]))
    ih = max(0.0, min(ay1, by1) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return float(inter / union) if union > 0 else 0.0


def detect_scaled(detector: Any, rgb: np.ndarray, max_side: int | None = None) -> list[Box]:
    """Faces of an RGB frame, detected on a copy whose long side is at most ``max_side``
    (detection time grows with the pixel count); boxes are in the frame's coordinates."""
    import cv2

    from .pipeline import detect_rgb

    h, w = rgb.shape[:2]
    scale = 1.0 if not max_side or max(h, w) <= max_side else max_side / max(h, w)
    if scale == 1.0:
        return detect_rgb(detector, rgb)
    small = cv2.resize(rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    return [tuple(int(round(v / scale)) for v in box) for box in detect_rgb(detector, small)]  # type: ignore[misc]
