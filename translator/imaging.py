"""Pictures people look at: sample grids and the loss plot."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .safe_write import atomic_path


def make_grid(images: np.ndarray | Sequence[np.ndarray], nrow: int | None = None,
              pad: int = 2) -> np.ndarray:
    """Same-sized ``[H, W, C]`` uint8 images (an ``[N, H, W, C]`` array or a list) tiled into
    one image, ``nrow`` to a row (default: a square-ish grid), ``pad`` white pixels between."""
    if len(images) == 0:
        raise ValueError("no images to tile")
    n = len(images)
    h, w, c = images[0].shape
    nrow = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / nrow)
    grid = np.full((rows * (h + pad) + pad, nrow * (w + pad) + pad, c), 255, np.uint8)
    for i, img in enumerate(images):
        r, col = divmod(i, nrow)
        y, x = pad + r * (h + pad), pad + col * (w + pad)
        grid[y:y + h, x:x + w] = img
    return grid


def save_image(array: np.ndarray, path: Path) -> Path:
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp)
    return path


def grid_image(images: np.ndarray, nrow: int, min_cell: int = 64) -> np.ndarray:
    """A grid as one image; small images are enlarged (nearest) so a 32 px grid stays readable."""
    scale = max(1, math.ceil(min_cell / images.shape[1]))
    if scale > 1:
        images = images.repeat(scale, axis=1).repeat(scale, axis=2)
    return make_grid(images, nrow)


def save_grid(images: np.ndarray, nrow: int, path: Path, min_cell: int = 64) -> Path:
    """Save :func:`grid_image` of ``images``."""
    return save_image(grid_image(images, nrow, min_cell), path)


def plot_losses(csv_path: Path, png_path: Path) -> Path | None:
    """Plot every loss column of a losses CSV against the step; None if nothing to plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(csv_path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        return None
    steps = [int(r["step"]) for r in rows]
    names = [k for k in rows[0] if k != "step"]
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    for name in names:
        values = [float(r[name]) if r[name] not in ("", None) else np.nan for r in rows]
        ax.plot(steps, values, label=name, linewidth=1.2)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8, ncol=2)
    fig.tight_layout()
    try:
        with atomic_path(png_path) as tmp:
            fig.savefig(tmp)
    finally:
        plt.close(fig)
    return png_path
