"""Generation models (noise -> image): the one path from latent vectors to images.

``gantool sample`` (an exported model or a run's checkpoint), the contract check and
``gantool serve``'s generation endpoints all draw noise with :func:`latent_noise` and
render it with :func:`run_generator`; the grid is tiled by :func:`translator.imaging.save_grid`.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from translator.errors import GantoolError
from translator.imaging import save_grid

from .pipeline import from_tensor
from .session import Log, ModelSession, stderr_log

#: Noise vectors per model run when the model takes any batch size.
MAX_BATCH = 64


def latent_noise(count: int, latent_dim: int, seed: int) -> np.ndarray:
    """``[count, latent_dim]`` standard-normal float32 noise; the same seed gives the same
    vectors whichever model (ONNX file or checkpoint) they are fed to."""
    return np.random.default_rng(seed).standard_normal((count, latent_dim)).astype(np.float32)


def run_generator(model: Any, latents: np.ndarray) -> list[np.ndarray]:
    """Noise ``[n, latent_dim]`` -> RGB uint8 images, fed in the shape the model's input
    wants (DCGAN generators exported with ``[n, latent_dim, 1, 1]``) and in batches it
    accepts. ``model``: a :class:`ModelSession` or anything with the same ``info``/``run``."""
    info = model.info
    extra = (1,) * max(0, len(info.input_shape) - 2)
    step = info.max_batch or MAX_BATCH
    images: list[np.ndarray] = []
    for start in range(0, len(latents), step):
        chunk = latents[start : start + step].reshape(-1, latents.shape[1], *extra)
        images.extend(from_tensor(model.run(chunk), info))
    return images


def sample_grid(
    model: str | os.PathLike | Any,
    n: int,
    output: str | os.PathLike,
    seed: int = 0,
    provider: str = "auto",
    log: Log = stderr_log,
) -> Path:
    """Render ``n`` noise vectors of ``seed`` with a generation model and write them as
    one PNG grid (small images enlarged so the grid stays readable).

    ``model``: an exported ONNX file (opened on ``provider``) or an open generator such as
    :class:`translator.runtime.torch_model.CheckpointGenerator`. Returns the written path.
    Raises :class:`GantoolError` for a translation model, a bad ``n`` or an output path
    that is a folder.
    """
    if n < 1:
        raise GantoolError("the number of samples must be at least 1")
    out = Path(output)
    if out.is_dir():
        raise GantoolError(f"output {out} is a folder; give a file name such as grid.png")
    if out.suffix == "":
        out = out.with_suffix(".png")
    session = ModelSession(model, provider, log=log) if isinstance(model, (str, os.PathLike)) else model
    info = session.info
    if info.kind != "generation" or info.latent_dim is None:
        raise GantoolError(f"{info.path.name} is an image translation model; use gantool apply for it")
    log(f"Model: {info.describe()}; provider: {session.provider}")
    images = run_generator(session, latent_noise(n, info.latent_dim, seed))
    return save_grid(np.stack(images), math.ceil(math.sqrt(n)), out)
