"""``translator.data``: what every data set shares: ``ImageList``, decoding (:mod:`.images`),
the batch pipeline and caches (:mod:`.pipeline`), opening ``--data`` (:mod:`.datasets`). The
data sets themselves are plugins (``register_datasets``; the built-in ones are in
``translator.plugins.datasets``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .images import ImageReadError, read_image


@dataclass
class ImageList:
    """One domain's images: file paths, in-memory arrays, or a mix.

    ``load(i)`` returns an ``[H, W, 3]`` RGB uint8 array. ``notes`` carries messages for the
    user (e.g. files skipped while scanning). ``paired``: item ``i`` shows the same scene as
    item ``i`` of the other list of its request (set by the core for models that learn from
    pairs); the batch pipeline then picks and augments both halves alike.
    """

    name: str
    items: Sequence[Path | np.ndarray]
    description: str = ""
    notes: list[str] = field(default_factory=list)
    loader: Callable[[Path], np.ndarray] = read_image
    paired: bool = False

    def __len__(self) -> int:
        return len(self.items)

    def load(self, index: int) -> np.ndarray:
        item = self.items[index]
        if isinstance(item, np.ndarray):
            return item
        return self.loader(item)

    def label(self, index: int) -> str:
        item = self.items[index]
        return item.name if isinstance(item, Path) else f"{self.name}[{index}]"


__all__ = ["ImageList", "ImageReadError", "read_image"]
