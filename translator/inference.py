"""PyTorch inference from a run's checkpoint: samples and translations."""

from __future__ import annotations

from pathlib import Path

import torch

from .data.pipeline import to_uint8
from .errors import GantoolError
from .imaging import save_grid
from .runs import load_model


def sample_run(run_dir: Path, count: int, output: Path, seed: int = 0,
               step: int | None = None) -> Path:
    """A grid of ``count`` images from a generation run's generator."""
    model, rc, _ = load_model(run_dir, step)
    gens = model.generators()
    if rc.spec.kind != "generation" or "generator" not in gens:
        raise GantoolError(f"{run_dir} is a {rc.spec.kind} run; use gantool translate")
    gen = gens["generator"]
    noise = torch.randn(count, gen.latent_dim, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        images = gen.module(noise)
    nrow = max(1, int(count**0.5))
    return save_grid(to_uint8(images), nrow, Path(output))
