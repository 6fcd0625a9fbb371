"""TensorBoard event files in ``RUN/logs/`` beside ``losses.csv``, when tensorboard is installed.

Training works the same without the package; with it, ``tensorboard --logdir RUN/logs``
shows the logged scalars and the sample grids as the run goes.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

EVENT_FILE_PREFIX = "events.out.tfevents."


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
        _wait_until_new_files_sort_last(log_dir)
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


def _wait_until_new_files_sort_last(log_dir: Path) -> None:
    """Sleep until the clock is past the second in which the newest event file began.

    TensorBoard reads a folder's event files in name order, and a name starts with its
    writer's creation second, then host, process and a counter compared as text (``...100``
    sorts before ``...99``). A run resumed within the second in which it started could
    write a file that sorts first, and the purge of the interrupted run's last steps would
    be read before the steps it drops. Waiting is needed only then: at most one second.
    """
    seconds = [int(part) for path in Path(log_dir).glob(EVENT_FILE_PREFIX + "*")
               if (part := path.name[len(EVENT_FILE_PREFIX):].split(".")[0]).isdigit()]
    if seconds:
        time.sleep(max(0.0, max(seconds) + 1 - time.time()))
