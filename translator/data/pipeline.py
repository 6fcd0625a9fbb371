"""From image lists to training batches: resize, augment, and a step-indexed batch source.

The batch of step ``s`` is a pure function of (seed, s, rank): which images, and how they
are cropped and flipped. Resuming at step ``s`` therefore reproduces the data order of an
uninterrupted run exactly, with any number of loader workers, and ranks never overlap.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from ..errors import GantoolError
from ..safe_write import atomic_path, is_plain_file
from . import ImageList
from .images import ImageReadError

CROP_SCALE = 286 / 256  # the reference CycleGAN loads at 286 px and crops 256


def resize_square(img: np.ndarray, size: int) -> np.ndarray:
    """Resize the short side to ``size`` and centre-crop a square."""
    h, w = img.shape[:2]
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    img = cv2.resize(img, (nw, nh), interpolation=interp) if (nh, nw) != (h, w) else img
    top, left = (nh - size) // 2, (nw - size) // 2
    return img[top:top + size, left:left + size]


PREPROCESS = ("resize-and-crop", "crop", "none")


@dataclass(frozen=True)
class Augmentation:
    """How a training image becomes a ``size`` square, and whether it may be mirrored.

    ``preprocess`` takes the reference CycleGAN's names: ``resize-and-crop`` (resize to
    1.12x ``size``, random crop), ``crop`` (random crop at the file's own scale; images
    smaller than ``size`` are enlarged first) or ``none`` (resize the short side, centre
    crop). ``flip`` mirrors half of the images at random.
    """

    preprocess: str = "none"
    flip: bool = False

    def __post_init__(self) -> None:
        if self.preprocess not in PREPROCESS:
            raise GantoolError(f"--preprocess must be one of {', '.join(PREPROCESS)}, "
                               f"not '{self.preprocess}'")

    @classmethod
    def of(cls, value: Augmentation | str) -> Augmentation:
        """An :class:`Augmentation`, or a ``ModelSpec.augment`` word (``resize``, ``crop-flip``)."""
        if isinstance(value, Augmentation):
            return value
        return cls("resize-and-crop", True) if value == "crop-flip" else cls("none", False)

    def describe(self) -> str:
        flip = "random horizontal flip" if self.flip else "no flip"
        return f"preprocess {self.preprocess}, {flip}"


def base_side(size: int, augment: Augmentation | str) -> int | None:
    """The square side an image is resized to before augmentation (crops come from it).

    ``None`` for ``crop``: images keep their own scale, so there is no common side.
    """
    preprocess = Augmentation.of(augment).preprocess
    if preprocess == "crop":
        return None
    return size if preprocess == "none" else round(size * CROP_SCALE)


def _at_least(img: np.ndarray, size: int) -> np.ndarray:
    """Enlarge ``img`` so that its short side is at least ``size``, keeping its aspect."""
    h, w = img.shape[:2]
    if min(h, w) >= size:
        return img
    scale = size / min(h, w)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    return cv2.resize(img, (nw, nh), interpolation=cv2.INTER_CUBIC)


def prepare(
    img: np.ndarray,
    size: int,
    augment: Augmentation | str,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """An RGB uint8 image to a square ``size`` image, augmented as asked.

    Resizing to :func:`base_side` comes first and is all that depends on the file, which is
    what :class:`DecodeCache` keeps; an image already at that side is not resized again.
    Without ``rng`` the result is the unaugmented centre square.
    """
    aug = Augmentation.of(augment)
    if rng is None:
        return resize_square(img, size)
    side = base_side(size, aug)
    big = _at_least(img, size) if side is None else resize_square(img, side)
    y, x = rng.integers(0, (big.shape[0] - size + 1, big.shape[1] - size + 1))
    out = big[y:y + size, x:x + size]
    # Drawn whether or not it is used, so that crops do not depend on the flip setting.
    if rng.random() < 0.5 and aug.flip:
        out = out[:, ::-1]
    return out


def limit_images(domains: dict[str, ImageList], max_images: int | None) -> dict[str, ImageList]:
    """At most ``max_images`` of each domain: a fixed subset, the same for every run and seed.

    Spread over the whole list by a constant-seeded draw (not the first N, which in a
    folder sorted by name or a data set sorted by source may all look alike).
    """
    if max_images is None:
        return domains
    if max_images < 1:
        raise GantoolError("--max-images must be at least 1")
    out = {}
    for key, images in domains.items():
        if len(images) <= max_images:
            out[key] = images
            continue
        keep = np.sort(np.random.default_rng(0).permutation(len(images))[:max_images])
        out[key] = dataclasses.replace(
            images, items=[images.items[i] for i in keep],
            description=f"{images.description} ({max_images} of {len(images)})")
    return out


def to_tensor(images: list[np.ndarray]) -> torch.Tensor:
    """``[H, W, 3]`` uint8 arrays to a ``[N, 3, H, W]`` float tensor in [-1, 1]."""
    batch = torch.from_numpy(np.ascontiguousarray(np.stack(images))).permute(0, 3, 1, 2)
    return batch.float().div_(127.5).sub_(1.0)


def to_uint8(batch: torch.Tensor) -> np.ndarray:
    """``[N, 3, H, W]`` in [-1, 1] to ``[N, H, W, 3]`` uint8."""
    arr = ((batch.detach().float().clamp(-1, 1) + 1) * 127.5).round().byte()
    return arr.permute(0, 2, 3, 1).cpu().numpy()


def load_or_next(images: ImageList, index: int, warned: set[str]) -> np.ndarray:
    """Image ``index``, or the next readable one, warning once per unreadable file.

    A file that fails to decode is replaced deterministically, so a truncated JPEG deep in
    a data set costs one warning, not the run.
    """
    for attempt in range(len(images)):
        i = (index + attempt) % len(images)
        try:
            return images.load(i)
        except ImageReadError as exc:
            label = images.label(i)
            if label not in warned:
                warned.add(label)
                print(f"warning: skipping {label}: {exc}", file=sys.stderr)
    raise GantoolError(f"no readable image in domain '{images.name}'")


def is_paired(domains: dict[str, ImageList]) -> bool:
    """Whether ``domains`` are the two halves of paired data (``ImageList.paired``)."""
    return len(domains) == 2 and all(lst.paired for lst in domains.values())


def load_pair_or_next(domains: dict[str, ImageList], index: int,
                      warned: set[str]) -> list[np.ndarray]:
    """Both halves of pair ``index``, or of the next pair whose halves are both readable:
    :func:`load_or_next` for pairs, which skips a pair as one."""
    lists = list(domains.values())
    n = len(lists[0])
    for attempt in range(n):
        i = (index + attempt) % n
        try:
            return [lst.load(i) for lst in lists]
        except ImageReadError as exc:
            label = " / ".join(lst.label(i) for lst in lists)
            if label not in warned:
                warned.add(label)
                print(f"warning: skipping the pair {label}: {exc}", file=sys.stderr)
    raise GantoolError(f"no readable pair in '{lists[0].name}' and '{lists[1].name}'")


class DecodeCache:
    """Decoded, resized images of one domain in a memory-mapped file, filled on first use.

    Decoding JPEGs dominates data loading; after the first epoch every image comes from
    the page cache instead. Loader worker processes share the mapping, so each image is
    decoded once per run, not once per worker.
    """

    def __init__(self, folder: Path, name: str, count: int, side: int) -> None:
        stem = folder / f"{name}-{count}x{side}"
        self.images = _open_memmap(stem.with_suffix(".images.npy"), (count, side, side, 3), np.uint8)
        self.filled = _open_memmap(stem.with_suffix(".filled.npy"), (count,), np.bool_)

    def get(self, index: int, load: Callable[[], np.ndarray]) -> np.ndarray:
        if self.filled[index]:
            return np.asarray(self.images[index])
        img = load()
        self.put(index, img)
        return img

    def put(self, index: int, img: np.ndarray) -> None:
        self.images[index] = img
        self.filled[index] = True  # after the pixels: a reader never sees a half-written row


def _open_memmap(path: Path, shape: tuple[int, ...], dtype) -> np.ndarray:
    """The cache file at ``path``, reused only if it is a plain file of this shape: a
    mapping writes in place, so a symlink or hard link there would carry the pixels into
    whatever it leads to. Anything else is replaced by a new file, never written through."""
    if is_plain_file(path):
        try:
            arr = np.load(path, mmap_mode="r+")
        except (OSError, ValueError):  # a damaged cache is only a slower start
            arr = None
        if arr is not None and arr.shape == shape and arr.dtype == dtype:
            return arr
    with atomic_path(path) as tmp:
        arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)
    return arr


def create_caches(domains: dict[str, ImageList], folder: Path, size: int,
                  augment: Augmentation | str) -> dict[str, DecodeCache]:
    """Caches for the domains read from files (in-memory sets and ``crop`` need none)."""
    side = base_side(size, augment)
    if side is None:
        return {}
    return {key: DecodeCache(folder, key, len(images), side) for key, images in domains.items()
            if any(isinstance(item, Path) for item in images.items[:1])}


@dataclass(eq=False)
class StepBatches(torch.utils.data.Dataset):
    """Map-style dataset whose item ``s`` is the whole batch for training step ``s``.

    ``rank`` of ``world_size`` is this process's share of a distributed run; ``caches``
    hold decoded images (:func:`create_caches`).
    """

    domains: dict[str, ImageList]
    batch_size: int
    size: int
    augment: Augmentation | str
    seed: int
    total_steps: int
    rank: int = 0
    world_size: int = 1
    caches: dict[str, DecodeCache] = dataclasses.field(default_factory=dict)
    _perm_cache: dict[tuple[int, int], np.ndarray] = dataclasses.field(
        default_factory=dict, init=False, repr=False)
    _warned: set[str] = dataclasses.field(default_factory=set, init=False, repr=False)

    def __post_init__(self) -> None:
        self.augment = Augmentation.of(self.augment)

    def __len__(self) -> int:
        return self.total_steps

    def _permutation(self, domain_index: int, epoch: int, n: int) -> np.ndarray:
        key = (domain_index, epoch)
        if key not in self._perm_cache:
            if len(self._perm_cache) > 8:
                self._perm_cache.clear()
            rng = np.random.default_rng([self.seed, domain_index, epoch])
            self._perm_cache[key] = rng.permutation(n)
        return self._perm_cache[key]

    def indices(self, step: int, domain_index: int, n: int) -> list[int]:
        """Which images of a domain of ``n`` images step ``step`` uses on this rank."""
        first = (step * self.world_size + self.rank) * self.batch_size
        out = []
        for counter in range(first, first + self.batch_size):
            epoch, pos = divmod(counter, n)
            out.append(int(self._permutation(domain_index, epoch, n)[pos]))
        return out

    def _load(self, images: ImageList, index: int) -> np.ndarray:
        return load_or_next(images, index, self._warned)

    def _base(self, key: str, images: ImageList, index: int) -> np.ndarray:
        side = base_side(self.size, self.augment)
        if side is None:
            return self._load(images, index)
        load = lambda: resize_square(self._load(images, index), side)  # noqa: E731
        cache = self.caches.get(key)
        return cache.get(index, load) if cache is not None else load()

    def __getitem__(self, step: int) -> dict[str, torch.Tensor]:
        if is_paired(self.domains):
            return self._pairs(step)
        batch = {}
        for d, (key, images) in enumerate(self.domains.items()):
            picked = []
            for j, index in enumerate(self.indices(step, d, len(images))):
                rng = np.random.default_rng([self.seed, step, self.rank, d, j, 7])
                picked.append(prepare(self._base(key, images, index), self.size, self.augment, rng))
            batch[key] = to_tensor(picked)
        return batch

    def _pairs(self, step: int) -> dict[str, torch.Tensor]:
        """Paired domains: the same images of both, each pair cropped and flipped by one
        draw (the first domain's order and seeds, so that a pair never comes apart)."""
        first = next(iter(self.domains.values()))
        picked: dict[str, list[np.ndarray]] = {key: [] for key in self.domains}
        for j, index in enumerate(self.indices(step, 0, len(first))):
            bases = self._pair_bases(index)
            for key, base in zip(self.domains, bases, strict=True):
                rng = np.random.default_rng([self.seed, step, self.rank, 0, j, 7])
                picked[key].append(prepare(base, self.size, self.augment, rng))
        return {key: to_tensor(images) for key, images in picked.items()}

    def _pair_bases(self, index: int) -> list[np.ndarray]:
        """Both halves of pair ``index`` at one shape (a crop lands on the same place)."""
        side = base_side(self.size, self.augment)
        caches = [self.caches.get(key) for key in self.domains]
        if side is not None and all(c is not None and c.filled[index] for c in caches):
            return [np.asarray(c.images[index]) for c in caches if c is not None]
        found = load_pair_or_next(self.domains, index, self._warned)
        if side is None:  # ``crop``: each half at its own scale, the second matched to the first
            h, w = found[0].shape[:2]
            return [img if img.shape[:2] == (h, w) else
                    cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA) for img in found]
        bases = [resize_square(img, side) for img in found]
        for cache, base in zip(caches, bases, strict=True):
            if cache is not None:
                cache.put(index, base)
        return bases


def fixed_examples(domains: dict[str, ImageList], size: int, n: int = 8) -> dict[str, torch.Tensor]:
    """The first ``n`` images of each domain, unaugmented: inputs for comparable grids."""
    out = {}
    for key, images in domains.items():
        warned: set[str] = set()
        picked = [resize_square(load_or_next(images, i, warned), size)
                  for i in range(min(n, len(images)))]
        out[key] = to_tensor(picked)
    return out
