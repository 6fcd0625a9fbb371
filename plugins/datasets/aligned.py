"""The reference's ``aligned`` layout for paired data: each file holds the two halves of one
pair side by side (A on the left, B on the right), in ``train/``, ``val/`` and ``test/``.

Both halves come from one file, so they always match; ``--direction BtoA`` (applied by the
core to every translation data set) swaps them, as the reference's ``--direction`` does.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np

from translator.data import ImageList, read_image
from translator.data.images import ImageReadError, is_image_path, open_capped, scan_images
from translator.errors import GantoolError
from translator.specs import DataRequest

#: The folders a split reads, first found first; the reference tests on ``test/`` or ``val/``.
SPLIT_FOLDERS = {"train": ("train",), "test": ("test", "val", "train")}
#: An aligned file is two images wide: detection asks for at least this width per height.
MIN_ASPECT = 1.8


def half(path: Path, right: bool) -> np.ndarray:
    """The left (A) or right (B) half of an aligned file."""
    img = read_image(path)
    middle = img.shape[1] // 2
    if middle == 0:
        raise ImageReadError("too narrow to hold two halves")
    return np.ascontiguousarray(img[:, middle:] if right else img[:, :middle])


def detect_aligned(path: Path) -> bool:
    """A ``train/`` folder whose first image is about twice as wide as it is tall."""
    folder = path / "train"
    if not folder.is_dir():
        return False
    first = next((p for p in sorted(folder.iterdir()) if p.is_file() and is_image_path(p)), None)
    if first is None:
        return False
    try:
        with open_capped(first) as img:
            width, height = img.size
    except (ImageReadError, OSError, ValueError):
        return False
    return width >= MIN_ASPECT * height


def open_aligned(path: Path | None, request: DataRequest) -> list[ImageList]:
    """The halves of each file of the split's folder as two lists (A, B) of pairs;
    generation models get the B halves."""
    assert path is not None
    folder = next((path / f for f in SPLIT_FOLDERS[request.split] if (path / f).is_dir()),
                  path / "train")
    scan = scan_images(folder)
    if not scan.paths:
        raise GantoolError(f"{folder} holds no readable images ({scan.describe_skipped() or 'empty'})")
    notes = [f"{folder}: {scan.describe_skipped()}"] if scan.skipped else []
    names = request.domains or ("A", "B")
    lists = [ImageList(name, scan.paths, description=f"{folder} ({side} halves)", notes=notes,
                       loader=partial(half, right=side == "right"))
             for name, side in zip(names, ("left", "right"), strict=True)]
    return lists[1:] if request.kind == "generation" else lists
