"""TensorBoard event files in ``RUN/logs/`` beside ``losses.csv``, when tensorboard is installed.

Training works the same without the package; with it, ``tensorboard --logdir RUN/logs``
shows the logged scalars and the sample grids as the run goes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


class TensorBoardLog:
    """The scalars of each log interval and each sample grid, for the main process only."""

    def __init__(self, writer) -> None:
        self.writer = writer

    @classmethod
    def open(cls, log_dir: Path, resume_step: int | None) -> TensorBoardLog | None:
        """A writer for ``log_dir``, or None when tensorboard is not installed.

        On resume, TensorBoard is told to drop what an interrupted run logged after the
        checkpoint it resumes from (as the CSV drops those rows), so no step shows twice.
        """
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            return None
        purge = resume_step + 1 if resume_step is not None else None
        return cls(SummaryWriter(str(log_dir), purge_step=purge, flush_secs=10))

    def scalars(self, step: int, values: dict[str, float]) -> None:
        for name, value in values.items():
            self.writer.add_scalar(f"train/{name}", value, step)

    def grid(self, step: int, pixels: np.ndarray) -> None:
        """A sample grid (``[H, W, 3]`` uint8), as saved beside the run's samples."""
        self.writer.add_image("samples", pixels, step, dataformats="HWC")

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
