"""The ``digits`` data set: scikit-learn's 1797 real handwritten digits, upscaled to 32x32 RGB."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from translator.data import ImageList
from translator.errors import GantoolError
from translator.specs import DataRequest

DIGIT_PIXELS = 32


@lru_cache(maxsize=1)
def _all_digit_images() -> tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise GantoolError("the digits set needs scikit-learn: pip install scikit-learn") from None
    import cv2

    digits = load_digits()
    images = []
    for img in digits.images:
        img8 = (img / 16.0 * 255).astype(np.uint8)
        big = cv2.resize(img8, (DIGIT_PIXELS, DIGIT_PIXELS), interpolation=cv2.INTER_CUBIC)
        images.append(np.repeat(big[..., None], 3, axis=2))
    images_arr, target = np.stack(images), digits.target
    images_arr.flags.writeable = False  # shared by every caller of digit_images
    return images_arr, target


def digit_images(label: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's real handwritten digits, white on black, upscaled to 32x32 RGB."""
    images, target = _all_digit_images()
    keep = np.ones(len(target), bool) if label is None else target == label
    return images[keep], target[keep]


def _digit_word(word: str) -> int:
    if word.isdigit() and len(word) == 1:
        return int(word)
    raise GantoolError(f"digits domains are the digits 0-9, not '{word}'")


def open_digits(path: Path | None, request: DataRequest) -> list[ImageList]:
    """Real handwritten digits (1797 of them); domains are digit words (``6`` and ``9``)."""
    # A fixed split: every fifth image of a digit is held out for the test split.
    def split(images: np.ndarray) -> list[np.ndarray]:
        index = np.arange(len(images))
        keep = index % 5 != 0 if request.split == "train" else index % 5 == 0
        return list(images[keep])

    if request.kind == "generation" and not request.domains:
        images, _ = digit_images()
        return [ImageList("digits", split(images), description="digits 0-9")]
    words = request.domains or ("6", "9")
    out = []
    for word in words:
        images, _ = digit_images(_digit_word(word))
        out.append(ImageList(word, split(images), description=f"digit {word}"))
    return out
