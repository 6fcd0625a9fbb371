"""The ``digit-edges`` data set: pairs (edges, digit) made from scikit-learn's 1797 real
handwritten digits, as edges2shoes pairs an edge map with its photo.

The edges are the digit's morphological gradient (dilation minus erosion) at 32x32,
thresholded to lines: the outline a pen stroke leaves. Every fifth digit is held out for
the test split, as in the ``digits`` set.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from translator.data import ImageList
from translator.errors import GantoolError
from translator.specs import DataRequest, Split

from .digits import digit_images

#: Gradient strength (0-255) above which a pixel is an edge.
EDGE_THRESHOLD = 64
DOMAINS = ("edges", "digit")


def edges_of(images: np.ndarray) -> np.ndarray:
    """``[N, H, W, 3]`` uint8 digits (white on black) to their outlines, white on black."""
    import cv2

    kernel = np.ones((3, 3), np.uint8)
    gray = [cv2.morphologyEx(np.ascontiguousarray(img[..., 0]), cv2.MORPH_GRADIENT, kernel)
            for img in images]
    lines = np.where(np.stack(gray) > EDGE_THRESHOLD, 255, 0).astype(np.uint8)
    return np.repeat(lines[..., None], 3, axis=3)


@lru_cache(maxsize=2)
def edge_pairs(split: Split) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Edges, digits and the digits' labels of one split (test: every fifth digit)."""
    images, labels = digit_images()
    index = np.arange(len(images))
    keep = index % 5 != 0 if split == "train" else index % 5 == 0
    return edges_of(images[keep]), images[keep], labels[keep]


def open_digit_edges(path: Path | None, request: DataRequest) -> list[ImageList]:
    """Edges (A) and the digits they came from (B), pair by pair; generation gets digits."""
    if request.domains and tuple(request.domains) != DOMAINS:
        raise GantoolError("digit-edges has the domains edges and digit (pairs), "
                           "no domain words")
    edges, digits, _ = edge_pairs(request.split)
    lists = [ImageList("edges", list(edges), description="outlines of real digits"),
             ImageList("digit", list(digits), description="the real digits")]
    return lists[1:] if request.kind == "generation" else lists
