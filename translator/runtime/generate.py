"""Generation models (noise -> image): sample a grid of images from an exported generator."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from translator.errors import GantoolError
from translator.safe_write import atomic_path

from .pipeline import from_tensor
from .session import Log, ModelSession, stderr_log


def make_grid(images: list[np.ndarray], columns: int | None = None, pad: int = 2) -> np.ndarray:
    """Tile same-sized RGB images into one image with ``pad`` pixels of white between."""
    if not images:
        raise ValueError("no images to tile")
    h, w = images[0].shape[:2]
    cols = columns or math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / cols)
    grid = np.full((rows * h + (rows + 1) * pad, cols * w + (cols + 1) * pad, 3), 255, np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        grid[y : y + h, x : x + w] = img
    return grid


def sample_grid(
    model_path: str | os.PathLike,
    n: int,
    output: str | os.PathLike,
    seed: int = 0,
    provider: str = "auto",
    log: Log = stderr_log,
) -> Path:
    """Feed ``n`` standard-normal noise vectors ``[n, latent_dim]`` (seeded, so the same seed
    gives the same grid) to a generation model and write the images as one PNG grid.

    Returns the written path. Raises :class:`GantoolError` for a translation model, a bad
    ``n`` or an output path that is a folder.
    """
    if n < 1:
        raise GantoolError("the number of samples must be at least 1")
    out = Path(output)
    if out.is_dir():
        raise GantoolError(f"output {out} is a folder; give a file name such as grid.png")
    if out.suffix == "":
        out = out.with_suffix(".png")
    session = ModelSession(model_path, provider, log=log)
    info = session.info
    if info.kind != "generation" or info.latent_dim is None:
        raise GantoolError(f"{session.path.name} is an image translation model; use gantool apply for it")
    log(f"Model: {info.describe()}; provider: {session.provider}")
    noise = np.random.default_rng(seed).standard_normal((n, info.latent_dim)).astype(np.float32)
    shape = info.input_shape
    # DCGAN-style generators may take [N, latent, 1, 1]; feed the same noise in that shape.
    extra = (1,) * max(0, len(shape) - 2)
    step = info.max_batch or 64
    images: list[np.ndarray] = []
    for start in range(0, n, step):
        chunk = noise[start : start + step].reshape(-1, info.latent_dim, *extra)
        images.extend(from_tensor(session.run(chunk), info))
    from PIL import Image

    with atomic_path(out) as tmp:
        Image.fromarray(make_grid(images)).save(tmp)
    return out
