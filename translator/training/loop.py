"""The training loop every plugin shares: :func:`train`.

The model owns its step (:meth:`GANModel.train_step`); the loop owns the order of things
in a run: batch, step, schedulers, then losses, samples and checkpoints at their intervals.
What it needs is made before it by :func:`~translator.training.setup.setup_run`, and what
it writes goes through :class:`~translator.training.outputs.RunOutputs`.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from ..config import TrainConfig
from .device import restores_backend_flags
from .gan import GANModel
from .outputs import RunOutputs
from .setup import Run, setup_run


@dataclass
class TrainResult:
    run_dir: Path
    steps: int
    last_losses: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


@restores_backend_flags
def train(
    train_cfg: TrainConfig,
    model_config: Any = None,
    resume: Path | None = None,
    progress: bool = True,
    stop_after: int | None = None,
    on_step: Callable[[int, GANModel, dict[str, torch.Tensor]], None] | None = None,
    changes: Mapping[str, Any] | None = None,
) -> TrainResult:
    """Train ``train_cfg.model`` (or continue the run ``resume``) and return where it went.

    ``changes``: on resume, training options to change (those whose field metadata says
    ``resume``: steps, epochs, device, intervals); a resumed run otherwise keeps what it
    recorded, but for ``train_cfg.steps`` and ``train_cfg.device`` when they are set.

    ``stop_after`` ends the process's work after that many steps of this call (used to
    simulate an interruption); the run then resumes from its last checkpoint. ``on_step``
    is called after every step with (steps done, model, losses), on every rank.
    """
    with contextlib.ExitStack() as held:  # the run folder's lock, from set-up to the end
        run = setup_run(train_cfg, model_config, resume, held, changes)
        return _train_loop(run, progress, stop_after, on_step)


def _train_loop(run: Run, progress: bool, stop_after: int | None,
                on_step: Callable[[int, GANModel, dict[str, torch.Tensor]], None] | None,
                ) -> TrainResult:
    cfg, model, ctx = run.cfg, run.model, run.ctx
    outputs = RunOutputs.open(run)
    bar = tqdm(total=run.total, initial=run.start, desc=run.spec.name, unit="step",
               disable=not (progress and run.dist.is_main), dynamic_ncols=True,
               file=sys.stderr)
    model.train()
    last: dict[str, float] = {}
    began = time.perf_counter()
    step = run.start
    graphs = run.cuda_graphs
    for step, batch in zip(range(run.start, run.total), run.loader, strict=False):
        ctx.global_step = step
        if graphs:
            # A new step: graph outputs of the last one (already consumed) may be overwritten.
            torch.compiler.cudagraph_mark_step_begin()
        losses = model.train_step(run.to_device(batch), ctx)
        for sched in run.state.schedulers.values():
            sched.step()
        if run.average is not None:
            run.average.update(step)
        run.state.partial.add(losses)
        done = step + 1
        # Reading losses forces a device sync, so it happens only at log intervals.
        if done % cfg.log_every == 0 or done == run.total:
            last = run.state.partial.take_means()
            outputs.log(done, last)
            bar.set_postfix({k: f"{v:.3g}" for k, v in list(last.items())[:6]}, refresh=False)
        bar.update(1)
        if on_step is not None:
            on_step(done, model, losses)
        if done % cfg.sample_every == 0 or done == run.total:
            outputs.sample(done)
        if done % cfg.checkpoint_every == 0 or done == run.total:
            outputs.checkpoint(done)
        if stop_after is not None and done - run.start >= stop_after:
            break
    bar.close()
    outputs.close()
    return TrainResult(run.run_dir, step + 1, last, time.perf_counter() - began)
