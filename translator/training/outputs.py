"""What a run writes: the loss log (CSV and TensorBoard), sample grids and checkpoints
(:class:`RunOutputs`), and a run folder for weights made elsewhere (:func:`create_run`)."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..config import TrainConfig
from ..data.pipeline import to_uint8
from ..errors import GantoolError
from ..imaging import grid_image, plot_losses, save_image
from ..safe_write import append_text, atomic_path, write_text_atomic
from ..specs import ModelSpec
from .checkpoint import list_checkpoints, prune_checkpoints, save_checkpoint
from .gan import GANModel
from .runs import write_run_config
from .state import TrainingState
from .tensorboard_log import TensorBoardLog

if TYPE_CHECKING:  # the set-up module imports this one
    from .setup import Run


def create_run(run_dir: Path, spec: ModelSpec, train_cfg: TrainConfig, model_config: Any,
               model: GANModel, data: dict[str, Any],
               untrained: dict[str, str] | None = None) -> Path:
    """A run folder whose step-0 checkpoint holds ``model``'s weights as they are.

    For weights made elsewhere (an imported file): the folder is an ordinary run, so
    ``translate`` and ``export`` use it, and ``train --resume`` continues from those
    weights with fresh optimizers (when ``train_cfg.data`` names training data).
    ``untrained`` names the generators that are freshly initialised (with why), so that
    ``translate`` refuses them and ``export`` skips them by name. Returns the checkpoint
    folder.
    """
    if (run_dir / "config.json").exists():
        raise GantoolError(f"{run_dir} already holds a run; choose a new folder")
    run_dir.mkdir(parents=True, exist_ok=True)
    optimizers = model.configure_optimizers()
    schedulers = model.configure_schedulers(optimizers, train_cfg.steps or train_cfg.DEFAULT_STEPS)
    state = TrainingState(spec.name, model, optimizers, schedulers).state_dict()
    assert state is not None  # one process
    write_run_config(run_dir, spec, dataclasses.replace(train_cfg, model=spec.name),
                     model_config, data, untrained)
    return save_checkpoint(run_dir / "checkpoints", 0, model.nets.state_dict(), state)


# -- Phase 3: what the loop writes -------------------------------------------------------

class RunOutputs:
    """The loss log (CSV and TensorBoard), sample grids and checkpoints of a run.

    Files are written by the main process only; every rank calls each method, as
    checkpoints gather every rank's state.
    """

    def __init__(self, run: Run, log: LossLog | None, board: TensorBoardLog | None) -> None:
        self.run, self.losses, self.board = run, log, board

    @classmethod
    def open(cls, run: Run) -> RunOutputs:
        if not run.dist.is_main:
            return cls(run, None, None)
        resume_step = run.start if run.resumed else None
        return cls(run, LossLog(run.run_dir / "logs" / "losses.csv", resume_step),
                   TensorBoardLog.open(run.run_dir / "logs", resume_step))

    def log(self, step: int, means: dict[str, float]) -> None:
        if self.losses is not None:
            self.losses.append(step, means)
        if self.board is not None:
            self.board.scalars(step, means)

    def sample(self, step: int) -> None:
        run = self.run
        if not run.dist.is_main:
            return
        was_training = run.model.training
        run.model.eval()
        averaged = run.average.swapped_in() if run.average else contextlib.nullcontext()
        with torch.no_grad(), run.ctx.autocast(), averaged:
            fixed = run.state.fixed or {}
            images, nrow = run.model.sample_grid({k: v.to(run.device) for k, v in fixed.items()})
        run.model.train(was_training)
        grid = grid_image(to_uint8(images), nrow)
        save_image(grid, run.run_dir / "samples" / f"step-{step:07d}.png")
        if self.board is not None:
            self.board.grid(step, grid)

    def checkpoint(self, step: int) -> None:
        run = self.run
        run.state.step = step
        state = run.state.state_dict()
        if state is None:
            return
        checkpoints = run.run_dir / "checkpoints"
        save_checkpoint(checkpoints, step, run.model.nets.state_dict(), state,
                        run.average.tensors if run.average else None)
        if self.board is not None:
            self.board.flush()  # a resumed run does not log these steps again
        prune_checkpoints(checkpoints, run.cfg.keep_last, run.cfg.history_every)

    def close(self) -> None:
        if self.board is not None:
            self.board.close()
        if self.losses is not None and self.losses.path.stat().st_size:
            plot_losses(self.losses.path, self.run.run_dir / "logs" / "losses.png")


class LossLog:
    """Losses as CSV rows, one per log interval.

    A loss may first be returned after the first row (WGAN's generator loss every
    ``n_critic`` steps): the file is then rewritten with the wider header, earlier rows
    leaving its cell empty. On resume, rows past the resumed step are dropped, as is a row
    a kill cut short (its step may be a prefix of the real one).
    """

    def __init__(self, path: Path, resume_step: int | None) -> None:
        self.path = path
        self.columns: list[str] = []
        # A symlink planted at the path is not read, and is replaced rather than written.
        if resume_step is not None and path.is_file() and not path.is_symlink():
            rows = [r for r in self._rows() if _logged_step(r) <= resume_step]
            self._rewrite(rows)
        else:
            write_text_atomic(path, "")

    def append(self, step: int, losses: dict[str, float]) -> None:
        new = [name for name in losses if name not in self.columns]
        if new:
            rows = self._rows() if self.columns else []
            self.columns += new
            self._rewrite(rows)
        row, header = io.StringIO(), io.StringIO()
        csv.DictWriter(row, ["step", *self.columns]).writerow(
            {"step": step, **{k: f"{v:.6g}" for k, v in losses.items()}})
        csv.DictWriter(header, ["step", *self.columns]).writeheader()
        # Never through a link planted since the file was made (see append_text).
        append_text(self.path, row.getvalue(), start=header.getvalue())

    def _rows(self) -> list[dict[str, str]]:
        """The rows on disk; also takes the columns from the header."""
        with open(self.path, newline="") as fh:
            reader = csv.DictReader(fh)
            rows = list(reader)
            # Read while open: an empty file's header is looked for on first access.
            self.columns = [c for c in reader.fieldnames or [] if c != "step"]
        return rows

    def _rewrite(self, rows: list[dict[str, str]]) -> None:
        with atomic_path(self.path) as tmp, open(tmp, "w", newline="") as fh:
            if self.columns:
                writer = csv.DictWriter(fh, ["step", *self.columns], restval="")
                writer.writeheader()
                writer.writerows(rows)


def _logged_step(row: Mapping[Any, Any]) -> float:
    """A CSV row's step; infinity for a row with too few or too many cells (dropped)."""
    step = row.get("step") or ""
    whole = None not in row and None not in row.values()
    return int(step) if whole and step.isdigit() else math.inf


def latest_step(run_dir: Path) -> int:
    steps = list_checkpoints(Path(run_dir) / "checkpoints")
    return max(steps) if steps else 0
