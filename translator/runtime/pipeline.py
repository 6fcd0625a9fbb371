"""The one frame pipeline every source goes through.

frame (RGB uint8) -> optional face detection -> preprocess -> onnxruntime -> postprocess
-> optional blend back -> (optionally side by side with the original) -> RGB uint8.
Images, folders, video files and cameras all call :meth:`FramePipeline.process`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from translator.errors import GantoolError

from .faces import FaceChoice, FaceSelector, Tracked
from .session import ModelInfo, OpenModel


class ModelOutputError(GantoolError, ValueError):
    """The model answered with something that is not a batch of images."""

# A frame whose long side would exceed this many times the processing size is scaled so
# that it does not: a 100:1 panorama must not make a 25,600-pixel-wide tensor.
_MAX_ASPECT = 4


#: ``gantool apply``'s default: each image at its own size, its short side at most this.
#: Generators are fully convolutional, and a photo run at the 64 px a model was trained at
#: comes back a blur (BENCHMARKS.md, "Processing size"); past this, time and memory grow
#: with the pixels for little a user sees.
OWN_SIZE_CAP = 1024


def processing_shape(height: int, width: int, info: ModelInfo,
                     own_size_up_to: int | None = None) -> tuple[int, int]:
    """The (height, width) a frame is resized to before the model.

    Fixed-size models get their size. Otherwise the short side becomes ``input_size`` (the
    training resolution, or ``--size``), or with ``own_size_up_to`` the frame's own short
    side, no smaller than ``input_size`` and no larger than ``own_size_up_to``; the aspect
    ratio is kept and both sides are rounded to ``size_multiple``.
    """
    fixed = info.fixed_hw
    if fixed is not None:
        return fixed
    size, mult = info.input_size, info.size_multiple
    if own_size_up_to is not None:
        size = max(size, min(min(height, width), own_size_up_to))
    scale = min(size / min(height, width), _MAX_ASPECT * size / max(height, width))
    return (
        max(mult, int(round(height * scale / mult)) * mult),
        max(mult, int(round(width * scale / mult)) * mult),
    )


def resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    import cv2

    if image.shape[0] == height and image.shape[1] == width:
        return image
    shrinking = height * width < image.shape[0] * image.shape[1]
    # INTER_AREA avoids aliasing when shrinking; cubic keeps edges when enlarging.
    interp = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
    return cv2.resize(image, (width, height), interpolation=interp)


def to_tensor(images: Sequence[np.ndarray], info: ModelInfo) -> np.ndarray:
    """Same-sized RGB uint8 images -> NCHW float32 in the model's range and channel order."""
    lo, hi = info.input_range
    batch = np.stack(images).astype(np.float32)
    if info.channel_order == "BGR":
        batch = batch[..., ::-1]
    batch = batch * ((hi - lo) / 255.0) + lo
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))


def from_tensor(batch: np.ndarray, info: ModelInfo) -> list[np.ndarray]:
    """NCHW float in the model's range -> list of RGB uint8 images."""
    lo, hi = info.input_range
    if batch.ndim != 4 or batch.shape[1] not in (1, 3):
        raise ModelOutputError(f"model output has shape {list(batch.shape)}, not an image [N, 3, H, W]")
    x = (batch.astype(np.float32) - lo) * (255.0 / (hi - lo))
    # A diverged model answers NaN: black, as clipping would make +-inf, without the
    # warnings numpy prints when casting NaN.
    x = np.nan_to_num(x, nan=0.0, posinf=255.0, neginf=0.0)
    x = np.clip(np.rint(x), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)
    if x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    elif info.channel_order == "BGR":
        x = x[..., ::-1]
    return [np.ascontiguousarray(img) for img in x]


@dataclass
class FaceOptions:
    """How face-aware mode crops, translates and blends faces back."""

    detector: Any
    blend: str = "feather"  # or "poisson"
    color_match: bool = False
    #: Smooth boxes over consecutive frames (video, webcam) so the swap does not jitter.
    smooth: bool = False
    #: Width of the fade at the edge of the face, as a fraction of the aligned crop.
    feather: float = 0.12
    smoother: Any = field(default=None, repr=False)
    #: With ``smooth`` (video): run the detector only on every n-th frame; the smoother's
    #: tracks stand in between. Detection costs more than translating a face crop.
    detect_every: int = 1
    #: Detect on a copy of the frame scaled so its long side is at most this (None: full
    #: size); boxes are scaled back. Faces below the detector's minimum size there are missed.
    detect_side: int | None = None
    #: Which of the faces found are translated (``--face``); the others are left as they are.
    choice: FaceChoice = field(default_factory=FaceChoice)


def paste_inside(frame: np.ndarray, translated: np.ndarray, face: Any, feather: float) -> None:
    """:func:`translator.face_align.paste_face` (feathered) into ``frame`` itself, working
    on the part of the frame the face's crop covers only: the rest of the frame is the
    frame's own anyway, and warping and blending all of it cost more than the face."""
    from translator.face_align import AlignedFace, paste_face

    h, w = frame.shape[:2]
    side = face.side
    inverse = np.vstack([face.matrix, [0.0, 0.0, 1.0]])
    corners = np.linalg.inv(inverse) @ np.array([[0, side, 0, side], [0, 0, side, side], [1, 1, 1, 1]])
    x0, y0 = (max(0, int(np.floor(v)) - 2) for v in corners[:2].min(axis=1))
    x1, y1 = min(w, int(np.ceil(corners[0].max())) + 2), min(h, int(np.ceil(corners[1].max())) + 2)
    if x1 <= x0 or y1 <= y0:
        return  # the face's crop lies outside the frame
    shifted = face.matrix.copy()
    shifted[:, 2] += face.matrix[:, :2] @ np.array([x0, y0], np.float64)
    roi = frame[y0:y1, x0:x1]
    roi[...] = paste_face(roi, translated, AlignedFace(face.crop, shifted), feather)


class FramePipeline:
    """Runs a translation model on whole frames or on the faces in them."""

    def __init__(
        self,
        model: OpenModel,
        faces: FaceOptions | None = None,
        side_by_side: bool = False,
        batch_size: int = 4,
        own_size_up_to: int | None = None,
    ) -> None:
        if model.info.kind != "translation":
            raise GantoolError(
                f"{model.info.path.name} is a generation model (noise -> image); use gantool sample for it"
            )
        self.model = model
        self.info = model.info
        self.faces = faces
        self.side_by_side = side_by_side
        self.batch_size = max(1, min(batch_size, model.info.max_batch or batch_size))
        #: Whole frames run at their own size up to this (None: at ``info.input_size``).
        self.own_size_up_to = own_size_up_to
        #: Faces found in each frame of the last :meth:`process` call in face mode.
        self.last_face_counts: list[int] = []
        self._frames_since_detection = 0
        self._selector: FaceSelector | None = None
        from .faces import BoxSmoother, CutDetector

        self._cuts = CutDetector()
        if faces is not None and faces.smooth and faces.smoother is None:
            faces.smoother = BoxSmoother()

    def reset(self) -> None:
        """Forget the face tracks of the previous video."""
        self._frames_since_detection = 0
        self._cuts.reset()
        if self._selector is not None:
            self._selector.reset()
        if self.faces is not None and self.faces.smoother is not None:
            self.faces.smoother.reset()

    def translate(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Translate whole RGB images; each comes back at its own size.

        Images that share a processing shape run together in batches of ``batch_size``.
        """
        out: list[np.ndarray | None] = [None] * len(images)
        groups: dict[tuple[int, int], list[int]] = {}
        for i, img in enumerate(images):
            shape = processing_shape(img.shape[0], img.shape[1], self.info, self.own_size_up_to)
            groups.setdefault(shape, []).append(i)
        for (ph, pw), idx in groups.items():
            for start in range(0, len(idx), self.batch_size):
                chunk = idx[start : start + self.batch_size]
                batch = to_tensor([resize(images[i], ph, pw) for i in chunk], self.info)
                results = from_tensor(self.model.run(batch), self.info)
                for i, res in zip(chunk, results, strict=True):
                    out[i] = resize(res, images[i].shape[0], images[i].shape[1])
        return out  # type: ignore[return-value]

    def process(self, frames: Sequence[np.ndarray], faces: bool = True) -> list[np.ndarray]:
        """The full pipeline for a list of RGB frames (in order, for video).

        ``faces=False`` switches face-aware mode off for this call (the webcam's ``f`` key).
        """
        if self.faces is not None and faces:
            results = self._process_faces(frames)
        else:
            results = self.translate(frames)
        if self.side_by_side:
            results = [np.hstack([f, r]) for f, r in zip(frames, results, strict=True)]
        return results

    def face_boxes(self, frame: np.ndarray) -> list[tuple[int, int, int, int]]:
        """Boxes of the faces to translate in one RGB frame (face mode), as ``--face``
        chooses among those found. In a video (``smooth``) the detector runs on every
        ``detect_every``-th frame and the smoother's tracks stand in between, a missed
        detection keeps the tracks for a few detections (no popping), and a face once chosen
        is followed by its track. A cut ends every track and brings the next detection
        forward to this frame."""
        from .faces import detect_scaled

        opts = self.faces
        assert opts is not None
        selector = self._face_selector(opts)
        if opts.smoother is None:  # a still: its own faces, chosen afresh
            selector.reset()
            found = detect_scaled(opts.detector, frame, opts.detect_side)
            return selector.select(list(enumerate(found)), frame[..., ::-1])
        return selector.select(self._tracked_faces(frame, opts), frame[..., ::-1])

    def _face_selector(self, opts: FaceOptions) -> FaceSelector:
        if self._selector is None or self._selector.choice != opts.choice:
            self._selector = FaceSelector(opts.choice, getattr(opts.detector, "gender", None))
        return self._selector

    def _tracked_faces(self, frame: np.ndarray, opts: FaceOptions) -> list[Tracked]:
        from .faces import detect_scaled

        assert opts.smoother is not None
        if self._cuts.is_cut(frame):
            opts.smoother.reset()
            self._frames_since_detection = 0
        due = self._frames_since_detection % max(1, opts.detect_every) == 0
        self._frames_since_detection += 1
        if due:
            opts.smoother.update(detect_scaled(opts.detector, frame, opts.detect_side))
        return opts.smoother.tracked()

    def translate_faces(self, frames: Sequence[np.ndarray],
                        boxes: Sequence[Sequence[tuple[int, int, int, int]]]) -> list[np.ndarray]:
        """Translate the faces of ``frames`` and put them back: each face aligned to the
        template training data is aligned to (:mod:`translator.face_align`), all faces
        translated in one batch, each warped back by the inverse and blended inside the
        face only."""
        from translator.face_align import align_face, face_landmarks, face_side, paste_face

        from .faces import color_match

        opts = self.faces
        assert opts is not None
        faces, where = [], []
        self.last_face_counts = [len(b) for b in boxes]
        for n, (frame, frame_boxes) in enumerate(zip(frames, boxes, strict=True)):
            # Landmark models take BGR, as detectors do; most frames of a stream have none.
            bgr = np.ascontiguousarray(frame[..., ::-1]) if frame_boxes else frame
            for box in frame_boxes:
                if min(box[2], box[3]) < 8:
                    continue
                landmarks = face_landmarks(opts.detector, bgr, box)
                faces.append(align_face(frame, landmarks, min(1024, face_side(landmarks))))
                where.append(n)
        results = [np.array(f, copy=True) for f in frames]
        translated = self.translate([face.crop for face in faces]) if faces else []
        for n, face, new in zip(where, faces, translated, strict=True):
            if opts.color_match:
                new = color_match(new, face.crop)
            if opts.blend == "poisson":  # the seamless clone looks past the face's own pixels
                results[n] = paste_face(results[n], new, face, opts.feather, True)
            else:
                paste_inside(results[n], new, face, opts.feather)
        return results

    def _process_faces(self, frames: Sequence[np.ndarray]) -> list[np.ndarray]:
        return self.translate_faces(frames, [self.face_boxes(f) for f in frames])

