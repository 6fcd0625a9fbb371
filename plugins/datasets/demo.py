"""The ``demo`` data set: synthetic disks (generation) and day/night scenes (translation),
painted on the fly, no download."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from translator.data import ImageList
from translator.errors import GantoolError
from translator.specs import DataRequest

DEMO_SIZE = 64
DEMO_COUNT = 512


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / (size - 1)
    return ys, xs


def _disk(img: np.ndarray, cy: float, cx: float, r: float, color, soft: float = 0.02) -> None:
    ys, xs = _grid(img.shape[0])
    d = np.sqrt((ys - cy) ** 2 + (xs - cx) ** 2)
    alpha = np.clip((r - d) / soft, 0, 1)[..., None]
    img[:] = img * (1 - alpha) + np.asarray(color, np.float32) * alpha


def make_scene(rng: np.random.Generator, night: bool, size: int = DEMO_SIZE) -> np.ndarray:
    """A landscape: sky, sun or moon, rolling hills, houses; daylight or night colours."""
    ys, xs = _grid(size)
    if night:
        top, bottom = np.array([0.02, 0.03, 0.12]), np.array([0.10, 0.12, 0.30])
    else:
        top, bottom = np.array([0.25, 0.55, 0.95]), np.array([0.70, 0.85, 1.00])
    img = top + (bottom - top) * ys[..., None]
    img = img.astype(np.float32)
    if night:
        for _ in range(rng.integers(8, 20)):
            y, x = rng.integers(0, size // 2), rng.integers(0, size)
            img[y, x] = 0.9
        _disk(img, rng.uniform(0.1, 0.3), rng.uniform(0.15, 0.85), 0.08, (0.95, 0.95, 0.85))
    else:
        _disk(img, rng.uniform(0.1, 0.3), rng.uniform(0.15, 0.85), 0.10, (1.0, 0.85, 0.2))
    horizon = rng.uniform(0.55, 0.7)
    phase, freq, amp = rng.uniform(0, 6.28), rng.uniform(4, 9), rng.uniform(0.03, 0.08)
    ground = ys > horizon + amp * np.sin(freq * xs + phase)
    grass = np.array([0.05, 0.12, 0.08] if night else [0.25, 0.65, 0.2], np.float32)
    img[ground] = grass * (0.85 + 0.15 * rng.random())
    for _ in range(rng.integers(1, 4)):
        x0, w = rng.uniform(0.05, 0.8), rng.uniform(0.08, 0.15)
        y0, h = horizon - rng.uniform(0.0, 0.1), rng.uniform(0.08, 0.14)
        box = (xs > x0) & (xs < x0 + w) & (ys > y0) & (ys < y0 + h)
        wall = (0.15, 0.12, 0.12) if night else (0.85, 0.75, 0.6)
        img[box] = wall
        win = box & (np.abs(xs - (x0 + w / 2)) < w / 6) & (np.abs(ys - (y0 + h / 2)) < h / 6)
        img[win] = (1.0, 0.85, 0.3) if night else (0.3, 0.4, 0.5)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def make_blob_image(rng: np.random.Generator, size: int = DEMO_SIZE) -> np.ndarray:
    """A coloured disk on a soft two-colour gradient: simple for a GAN, easy to judge."""
    ys, _ = _grid(size)
    a, b = rng.uniform(0.0, 0.4, 3), rng.uniform(0.0, 0.4, 3)
    img = (a + (b - a) * ys[..., None]).astype(np.float32)
    _disk(img, rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7), rng.uniform(0.15, 0.3),
          rng.uniform(0.5, 1.0, 3))
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


DEMO_DOMAINS = ("day", "night")


def open_demo(path: Path | None, request: DataRequest) -> list[ImageList]:
    """Synthetic data made on the fly: disks (generation) or day/night scenes (translation)."""
    offset = 0 if request.split == "train" else 10_000
    if request.kind == "generation":
        rng = np.random.default_rng(1234 + offset)
        items = [make_blob_image(rng) for _ in range(DEMO_COUNT)]
        return [ImageList("disks", items, description="demo: synthetic coloured disks")]
    if request.paired:
        return _demo_pairs(request, offset)
    out = []
    for word in request.domains or DEMO_DOMAINS:
        if word not in DEMO_DOMAINS:
            raise GantoolError(f"the demo set has domains day and night, not '{word}'")
        night = word == "night"
        rng = np.random.default_rng(99 + night + offset)
        items = [make_scene(rng, night) for _ in range(DEMO_COUNT)]
        out.append(ImageList(word, items, description=f"demo: synthetic {word} scenes"))
    return out


#: How a pair's night half relights its day half: darker, bluer, the sky's light gone.
_NIGHT_LIGHT = np.array([0.22, 0.27, 0.55], np.float32)


def night_of(day: np.ndarray) -> np.ndarray:
    """The night partner of a day scene for paired models: the same scene, relit."""
    lit = (day.astype(np.float32) / 255.0) ** 1.4 * _NIGHT_LIGHT
    return (np.clip(lit, 0, 1) * 255).astype(np.uint8)


def _demo_pairs(request: DataRequest, offset: int) -> list[ImageList]:
    """Day scenes (the unpaired set's own) and each one relit as night: pairs of one scene."""
    if request.domains and tuple(request.domains) != DEMO_DOMAINS:
        raise GantoolError("the demo set's pairs are day and night, in that order")
    rng = np.random.default_rng(99 + offset)
    days = [make_scene(rng, False) for _ in range(DEMO_COUNT)]
    return [ImageList("day", days, description="demo: synthetic day scenes"),
            ImageList("night", [night_of(d) for d in days],
                      description="demo: the day scenes relit as night")]
