"""The ``stripes`` data set: made in memory, so it needs no files and no download."""

from __future__ import annotations

import numpy as np

import translator
from translator.data import ImageList

DOMAINS = ("horizontal", "vertical")
COUNT = 64
SIDE = 48


def stripes(rng: np.random.Generator, vertical: bool) -> np.ndarray:
    """One ``[SIDE, SIDE, 3]`` RGB uint8 image of two-coloured stripes."""
    period = int(rng.integers(6, 16))
    offset = int(rng.integers(0, period))
    colours = rng.integers(0, 256, (2, 3), dtype=np.uint8)
    band = ((np.arange(SIDE) + offset) // (period // 2)) % 2
    image = colours[band][:, None, :].repeat(SIDE, axis=1)  # rows alternate: horizontal
    return np.ascontiguousarray(image.transpose(1, 0, 2) if vertical else image)


def open_stripes(request: translator.DataRequest) -> list[ImageList]:
    """One ImageList per requested domain: two for translation, one for generation."""
    words = request.domains or (DOMAINS if request.kind == "translation" else ())
    if request.kind == "generation" and not words:
        words = DOMAINS[:1]
    lists = []
    for word in words:
        if word not in DOMAINS:
            raise translator.GantoolError(f"the stripes set has domains {' and '.join(DOMAINS)}, "
                                          f"not '{word}'")
        # The test split draws other images than the train split.
        seed = DOMAINS.index(word) + (1000 if request.split == "test" else 0)
        rng = np.random.default_rng(seed)
        items = [stripes(rng, word == "vertical") for _ in range(COUNT)]
        lists.append(ImageList(word, items, description=f"stripes: {word}"))
    return lists
