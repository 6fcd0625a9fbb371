"""PyTorch inference from a run's checkpoint: samples."""

from __future__ import annotations

from pathlib import Path

from .runtime.generate import sample_grid
from .runtime.torch_model import CheckpointGenerator


def sample_run(run_dir: Path, count: int, output: Path, seed: int = 0,
               step: int | None = None) -> Path:
    """A grid of ``count`` images from a generation run's generator: the same noise and
    the same grid as ``gantool sample --model`` gives for the run's exported model."""
    return sample_grid(CheckpointGenerator(Path(run_dir), step), count, output, seed=seed,
                       log=lambda _line: None)
