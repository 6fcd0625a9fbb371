"""One face alignment for training data and the runtime: five landmarks, a similarity
transform onto a fixed template, and the inverse warp that puts a translated face back.

A model trained on aligned faces sees, at run time, faces aligned the same way: eyes
level, one scale, one margin (as CelebA and FFHQ are aligned). Landmarks come from a face
detector plugin that offers ``landmarks(bgr, box)``; for one that only finds boxes (Haar),
:func:`landmarks_from_box` estimates them from the box.

Landmark order, always in image coordinates (x, y), "left" meaning the image's left:
left eye outer corner, left eye inner corner, right eye inner corner, right eye outer
corner, base of the nose.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: Where the five landmarks land in an aligned crop, as fractions of its side. Measured on
#: CelebA's own aligned faces (mean of 196 faces: outer eye corners 0.36 of the side apart,
#: inner 0.42 of that, nose 0.56 of it below the eye line) and placed so the crop holds the
#: whole face, chin included, with a little hair above.
TEMPLATE = np.array([(0.32, 0.40), (0.424, 0.40), (0.576, 0.40), (0.68, 0.40), (0.50, 0.60)],
                    np.float64)

#: Where a frontal face box puts the landmarks, as fractions of the box (Haar's boxes on
#: the astronaut and on CelebA faces): the fallback for detectors without landmarks.
BOX_LANDMARKS = np.array([(0.19, 0.39), (0.38, 0.40), (0.62, 0.40), (0.82, 0.39), (0.50, 0.69)],
                         np.float64)


def landmarks_from_box(box: Sequence[float]) -> np.ndarray:
    """``[5, 2]`` landmarks estimated from a face box (x, y, w, h)."""
    x, y, w, h = (float(v) for v in box[:4])
    return BOX_LANDMARKS * (w, h) + (x, y)


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The ``[2, 3]`` rotation + uniform scale + shift that maps ``src`` points closest to
    ``dst`` points in least squares (Umeyama, 1991), with no reflection."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    u, sing, vt = np.linalg.svd(d.T @ s / len(src))
    sign = np.diag([1.0, np.sign(np.linalg.det(u @ vt)) or 1.0])
    rotation = u @ sign @ vt
    scale = float(np.trace(np.diag(sing) @ sign) / max(s.var(0).sum(), 1e-12))
    matrix = np.empty((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = mu_d - scale * rotation @ mu_s
    return matrix


def transform_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Points ``[N, 2]`` through a ``[2, 3]`` affine matrix."""
    points = np.asarray(points, np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


@dataclass(frozen=True)
class AlignedFace:
    """A face warped onto the template: the ``side`` x ``side`` crop and the frame -> crop
    matrix, whose inverse puts a translation of the crop back."""

    crop: np.ndarray
    matrix: np.ndarray

    @property
    def side(self) -> int:
        return int(self.crop.shape[0])


def face_side(landmarks: np.ndarray) -> int:
    """The side at which a face's aligned crop keeps the frame's own resolution."""
    eyes = float(np.linalg.norm(np.asarray(landmarks)[3] - np.asarray(landmarks)[0]))
    return max(8, round(eyes / (TEMPLATE[3, 0] - TEMPLATE[0, 0])))


def align_face(image: np.ndarray, landmarks: np.ndarray, side: int) -> AlignedFace:
    """Warp the face whose ``landmarks`` are given onto the template in a ``side`` square.
    Parts of the square outside the image repeat its edge pixels (no black corners for the
    model to learn)."""
    import cv2

    matrix = similarity(landmarks, TEMPLATE * side)
    crop = cv2.warpAffine(image, matrix, (side, side), flags=cv2.INTER_AREA
                          if _scale(matrix) < 1 else cv2.INTER_CUBIC,
                          borderMode=cv2.BORDER_REPLICATE)
    return AlignedFace(crop, matrix)


def _scale(matrix: np.ndarray) -> float:
    return float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))


def face_mask(side: int, feather: float = 0.12) -> np.ndarray:
    """``[side, side]`` float32 weights of the face inside an aligned crop: 1 over an
    ellipse around the template's eyes, nose and mouth down to the chin, easing to 0 over
    ``feather`` of the side, and exactly 0 well inside the crop's border, so that hair,
    ears and background around a face are the frame's own."""
    import cv2

    mask = np.zeros((side, side), np.float32)
    centre = (round(0.5 * side), round(0.53 * side))
    axes = (round(0.30 * side), round(0.36 * side))
    cv2.ellipse(mask, centre, axes, 0, 0, 360, 1.0, -1)
    blur = max(1, round(feather * side)) | 1
    return cv2.GaussianBlur(mask, (blur * 2 + 1, blur * 2 + 1), blur / 2)


def paste_face(frame: np.ndarray, translated: np.ndarray, face: AlignedFace,
               feather: float = 0.12, poisson: bool = False) -> np.ndarray:
    """``frame`` with ``translated`` (an image of ``face.crop``'s size) warped back by the
    inverse of ``face.matrix`` and blended in through :func:`face_mask` (``poisson``:
    OpenCV's seamless clone inside the same mask). Pixels where the mask is 0 are the
    frame's own, bit for bit."""
    import cv2

    h, w = frame.shape[:2]
    inverse = cv2.invertAffineTransform(face.matrix)
    back = cv2.warpAffine(np.ascontiguousarray(translated), inverse, (w, h),
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    weight = cv2.warpAffine(face_mask(face.side, feather), inverse, (w, h),
                            flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    if poisson:
        cloned = _seamless(frame, back, weight)
        if cloned is not None:
            return cloned
    out = frame.copy()
    inside = weight > 0
    share = weight[inside][:, None]
    mixed = frame[inside].astype(np.float32) * (1 - share) + back[inside] * share
    out[inside] = np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
    return out


def _seamless(frame: np.ndarray, back: np.ndarray, weight: np.ndarray) -> np.ndarray | None:
    """``cv2.seamlessClone`` of ``back`` into ``frame`` where ``weight`` is over half, or
    None when it cannot run (a face at the frame's edge: OpenCV asserts when the mask
    touches the border); the caller then feathers."""
    import cv2

    mask = np.where(weight > 0.5, 255, 0).astype(np.uint8)
    mask[:2], mask[-2:], mask[:, :2], mask[:, -2:] = 0, 0, 0, 0
    if not mask.any():
        return None
    bx, by, bw, bh = cv2.boundingRect(mask)
    try:  # OpenCV centres the mask's bounding box on `center`: that puts it where it is
        return cv2.seamlessClone(back, np.ascontiguousarray(frame), mask,
                                 (bx + bw // 2, by + bh // 2), cv2.NORMAL_CLONE)
    except cv2.error:
        return None


def landmark_error(found: np.ndarray, expected: np.ndarray) -> float:
    """Mean distance between two sets of landmarks, as a fraction of ``expected``'s outer
    eye distance (the usual normalised landmark error)."""
    found, expected = np.asarray(found, np.float64), np.asarray(expected, np.float64)
    eyes = float(np.linalg.norm(expected[3] - expected[0]))
    return float(np.linalg.norm(found - expected, axis=1).mean() / max(eyes, 1e-9))


def face_landmarks(detector: object, bgr: np.ndarray, box: Sequence[int]) -> np.ndarray:
    """A face's landmarks: the detector's own when it offers ``landmarks(bgr, box)``, else
    estimated from the box."""
    find = getattr(detector, "landmarks", None)
    return np.asarray(find(bgr, box), np.float64) if find else landmarks_from_box(box)


def find_face(detector: object, rgb: np.ndarray) -> np.ndarray | None:
    """The landmarks of the largest face in an RGB image, or None. Images under 400 px are
    looked at twice as large too when nothing is found at their own size, since detectors
    miss faces under about 80 px (a CelebA face is about 90)."""
    import cv2

    bgr = np.ascontiguousarray(rgb[..., ::-1])
    for scale in (1, 2):
        if scale > 1:
            if max(rgb.shape[:2]) >= 400:
                break
            bgr = cv2.resize(bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        boxes = detector.detect(bgr)  # type: ignore[attr-defined]
        if boxes:
            box = max(boxes, key=lambda b: b[2] * b[3])
            return face_landmarks(detector, bgr, box) / scale
    return None
