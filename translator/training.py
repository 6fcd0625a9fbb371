"""The training loop every plugin shares.

The model owns its step (:meth:`GANModel.train_step`); this module owns devices, mixed
precision, multi-process training, checkpoints, logs, sample grids and progress.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from .augmentation import choose_augmentation
from .checkpoint import (
    find_checkpoint,
    list_checkpoints,
    load_into,
    load_state,
    load_weights,
    prune_checkpoints,
    save_checkpoint,
)
from .config import TrainConfig
from .data import ImageList
from .data.pipeline import StepBatches, create_caches, fixed_examples, limit_images, to_uint8
from .device import (
    Distributed,
    choose_device,
    choose_precision,
    distributed_from_env,
    init_process_group,
)
from .diffaugment import DiffAugment
from .errors import GantoolError
from .gan import GANModel, StepContext
from .imaging import plot_losses, save_grid
from .registry import get_registry
from .runs import default_run_dir, describe_data, open_data, read_run_config, write_run_config
from .specs import ModelSpec


@dataclass
class TrainResult:
    run_dir: Path
    steps: int
    last_losses: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


def resolve_model_config(spec: ModelSpec, model_config: Any, train: TrainConfig) -> Any:
    """The loop fills in what a model config shares with training (its ``size``)."""
    if model_config is None:
        model_config = spec.config()
    names = {f.name for f in dataclasses.fields(model_config)}
    if "size" in names:
        model_config = dataclasses.replace(model_config, size=train.size)
    return model_config


def total_steps_for(train: TrainConfig, domains: dict[str, ImageList], world_size: int) -> int:
    if train.steps is not None and train.epochs is not None:
        raise GantoolError("give --steps or --epochs, not both")
    if train.steps is not None:
        if train.steps < 1:
            raise GantoolError("--steps must be at least 1")
        return train.steps
    if train.epochs is not None:
        largest = max(len(d) for d in domains.values())
        return max(1, math.ceil(train.epochs * largest / (train.batch_size * world_size)))
    return TrainConfig.DEFAULT_STEPS


class LossLog:
    """Losses as CSV rows; on resume, rows past the resumed step are dropped."""

    def __init__(self, path: Path, resume_step: int | None) -> None:
        self.path = path
        self.columns: list[str] | None = None
        if resume_step is not None and path.is_file():
            with open(path, newline="") as fh:
                rows = [r for r in csv.DictReader(fh) if int(r["step"]) <= resume_step]
            if rows:
                self.columns = [c for c in rows[0] if c != "step"]
            with open(path, "w", newline="") as fh:
                if self.columns is not None:
                    writer = csv.DictWriter(fh, ["step", *self.columns])
                    writer.writeheader()
                    writer.writerows(rows)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("")

    def append(self, step: int, losses: dict[str, float]) -> None:
        new = self.columns is None
        if new:
            self.columns = list(losses)
        with open(self.path, "a", newline="") as fh:
            writer = csv.DictWriter(fh, ["step", *self.columns], extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow({"step": step, **{k: f"{v:.6g}" for k, v in losses.items()}})


def _rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, torch.Tensor], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _gather(dist_info: Distributed, mine: Any) -> list[Any]:
    """Every rank's ``mine``, in rank order (collective: all ranks call it)."""
    if not dist_info.enabled:
        return [mine]
    import torch.distributed as dist

    states: list[Any] = [None] * dist_info.world_size
    dist.all_gather_object(states, mine)
    return states


def _gather_rng(dist_info: Distributed, device: torch.device) -> list[dict[str, torch.Tensor]]:
    return _gather(dist_info, {k: v.cpu() for k, v in _rng_state(device).items()})


def _workers(requested: int, domains: dict[str, ImageList]) -> int:
    if requested >= 0:
        return requested
    in_memory = all(
        len(d) == 0 or not isinstance(d.items[0], os.PathLike) for d in domains.values()
    )
    # Decoding files is worth extra processes; arrays already in memory are not.
    return 0 if in_memory else min(4, max(1, (os.cpu_count() or 2) - 1))


def train(
    train_cfg: TrainConfig,
    model_config: Any = None,
    resume: Path | None = None,
    progress: bool = True,
    stop_after: int | None = None,
    on_step: Callable[[int, GANModel, dict[str, torch.Tensor]], None] | None = None,
) -> TrainResult:
    """Train ``train_cfg.model`` (or continue the run ``resume``) and return where it went.

    ``stop_after`` ends the process's work after that many steps of this call (used to
    simulate an interruption); the run then resumes from its last checkpoint. ``on_step``
    is called after every step with (steps done, model, losses), on every rank.
    """
    resume_state = None
    if resume is not None:
        rc = read_run_config(resume)
        if train_cfg.model and train_cfg.model != rc.spec.name:
            raise GantoolError(
                f"{resume} is a run of model '{rc.spec.name}', not '{train_cfg.model}'"
            )
        steps_override = train_cfg.steps
        spec, model_config = rc.spec, rc.model_config
        train_cfg = dataclasses.replace(rc.train, out=str(resume))
        if steps_override is not None:
            train_cfg = dataclasses.replace(train_cfg, steps=steps_override, epochs=None)
        folder = find_checkpoint(Path(resume) / "checkpoints")
        resume_state = (folder, load_state(folder), load_weights(folder))
    else:
        spec = get_registry().model(train_cfg.model)
    model_config = resolve_model_config(spec, model_config, train_cfg)

    dist_info = distributed_from_env()
    device = choose_device(train_cfg.device, dist_info.local_rank, announce=dist_info.is_main)
    init_process_group(dist_info, device)
    amp_dtype = choose_precision(train_cfg.precision, device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    domains = limit_images(open_data(train_cfg, spec.kind, "train"), train_cfg.max_images)
    for lst in domains.values():
        for note in lst.notes:
            if dist_info.is_main:
                print(f"note: {note}", file=sys.stderr)
    train_cfg, augment, augment_line = choose_augmentation(train_cfg, spec, domains)
    if dist_info.is_main:
        print(augment_line, file=sys.stderr)
    total = total_steps_for(train_cfg, domains, dist_info.world_size)
    run_dir = Path(train_cfg.out) if train_cfg.out else default_run_dir(spec.name)
    if dist_info.enabled and not train_cfg.out:
        # A timestamped name may differ between ranks by a second: rank 0's wins.
        import torch.distributed as dist

        names = [str(run_dir)]
        dist.broadcast_object_list(names, src=0)
        run_dir = Path(names[0])
    if resume is None and (run_dir / "config.json").exists():
        raise GantoolError(f"{run_dir} already holds a run; use --resume {run_dir} or a new --out")
    caches = {}
    if train_cfg.cache and dist_info.is_main:
        caches = create_caches(domains, run_dir / "cache", train_cfg.size, augment)
    if dist_info.enabled:
        # Rank 0 writes config.json below (and made the caches): no rank may look for it
        # after that, and the other ranks open the caches only once they exist.
        import torch.distributed as dist

        dist.barrier()

    # Same seed on every rank: identical initial weights without a broadcast.
    torch.manual_seed(train_cfg.seed)
    model: GANModel = spec.build(model_config)
    if model.kind != spec.kind:
        raise GantoolError(f"model '{spec.name}' built a {model.kind} model, spec says {spec.kind}")
    model.to(device)
    channels_last = device.type == "cuda"
    if channels_last:
        model.to(memory_format=torch.channels_last)
    optimizers = model.configure_optimizers()
    schedulers = model.configure_schedulers(optimizers, total)
    scalers = {}
    if amp_dtype == torch.float16:
        scalers = {id(o): torch.amp.GradScaler("cuda") for o in optimizers.values()}
    diffaug = DiffAugment(train_cfg.diffaug, train_cfg.seed, dist_info.rank, device)
    ctx = StepContext(device, amp_dtype, scalers, dist_info.world_size, diffaug or None)
    ctx.total_steps = total

    test_domains = open_data(train_cfg, spec.kind, "test")
    generator = torch.Generator().manual_seed(train_cfg.seed)
    fixed = model.fixed_inputs(fixed_examples(test_domains, train_cfg.size), generator)

    start = 0
    if resume_state is not None:
        folder, state, weights = resume_state
        if state.get("model") != spec.name:
            raise GantoolError(f"checkpoint {folder} is of model '{state.get('model')}'")
        load_into(model.nets, weights, folder)
        try:
            for name, opt in optimizers.items():
                opt.load_state_dict(state["optimizers"][name])
            for name, sched in schedulers.items():
                sched.load_state_dict(state["schedulers"][name])
            for name, opt in optimizers.items():
                if id(opt) in scalers and name in state.get("scalers", {}):
                    scalers[id(opt)].load_state_dict(state["scalers"][name])
            # Per-rank state (image pools...) goes back to its own rank when the world
            # size is unchanged; otherwise every rank takes rank 0's.
            extras = state.get("extra_ranks")
            if extras is not None and len(extras) == dist_info.world_size:
                model.load_extra_state(extras[dist_info.rank])
            else:
                model.load_extra_state(state.get("extra", {}))
            fixed = state.get("fixed", fixed)
            rng = state["rng"]
        except (KeyError, ValueError) as exc:
            raise GantoolError(f"checkpoint {folder} does not fit this model: {exc}") from None
        if len(rng) != dist_info.world_size:
            print(f"note: checkpoint was written by {len(rng)} process(es); "
                  f"random streams restart for {dist_info.world_size}", file=sys.stderr)
        _set_rng_state(rng[dist_info.rank % len(rng)], device)
        start = int(state["step"])
        if start >= total:
            raise GantoolError(f"{run_dir} already finished {start} of {total} steps; "
                               "pass --steps N to train further")
    else:
        # Different noise per rank from here on; weights were made identical above.
        torch.manual_seed(train_cfg.seed * 1000 + dist_info.rank + 1)

    if train_cfg.compile:
        model = _maybe_compile(model)

    if dist_info.is_main:
        for sub in ("checkpoints", "samples", "logs"):
            (run_dir / sub).mkdir(parents=True, exist_ok=True)
        if resume is None:
            write_run_config(run_dir, spec, dataclasses.replace(train_cfg, model=spec.name),
                             model_config, describe_data(domains))
    log = LossLog(run_dir / "logs" / "losses.csv", start if resume else None) \
        if dist_info.is_main else None

    if train_cfg.cache and not dist_info.is_main:
        caches = create_caches(domains, run_dir / "cache", train_cfg.size, augment)
    workers = _workers(train_cfg.workers, domains)
    batches = StepBatches(domains, train_cfg.batch_size, train_cfg.size, augment,
                          train_cfg.seed, total, dist_info.rank, dist_info.world_size, caches)
    loader = torch.utils.data.DataLoader(
        batches, batch_size=None, sampler=range(start, total), num_workers=workers,
        pin_memory=device.type == "cuda", persistent_workers=False,
        prefetch_factor=4 if workers else None,
        # Its own generator: otherwise creating the iterator draws from the global RNG,
        # which would shift the model's noise on resume.
        generator=torch.Generator().manual_seed(train_cfg.seed),
    )

    def checkpoint(step_done: int) -> None:
        rng = _gather_rng(dist_info, device)
        extras = _gather(dist_info, model.extra_state())
        if not dist_info.is_main:
            return
        state = {
            "step": step_done,
            "model": spec.name,
            "optimizers": {n: o.state_dict() for n, o in optimizers.items()},
            "schedulers": {n: s.state_dict() for n, s in schedulers.items()},
            "scalers": {n: scalers[id(o)].state_dict() for n, o in optimizers.items()
                        if id(o) in scalers},
            "extra": extras[0],
            "extra_ranks": extras,
            "fixed": {k: v.cpu() for k, v in fixed.items()},
            "rng": rng,
        }
        save_checkpoint(run_dir / "checkpoints", step_done, model.nets.state_dict(), state)
        prune_checkpoints(run_dir / "checkpoints", train_cfg.keep_last, train_cfg.history_every)

    def sample(step_done: int) -> None:
        if not dist_info.is_main:
            return
        was_training = model.training
        model.eval()
        with torch.no_grad(), ctx.autocast():
            images, nrow = model.sample_grid({k: v.to(device) for k, v in fixed.items()})
        model.train(was_training)
        path = run_dir / "samples" / f"step-{step_done:07d}.png"
        save_grid(to_uint8(images), nrow, path)

    bar = tqdm(total=total, initial=start, desc=f"{spec.name}", unit="step",
               disable=not (progress and dist_info.is_main), dynamic_ncols=True,
               file=sys.stderr)
    model.train()
    sums: dict[str, torch.Tensor] = {}
    count = 0
    last: dict[str, float] = {}
    began = time.perf_counter()
    step = start
    for step, batch in zip(range(start, total), loader, strict=False):
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        if channels_last:
            batch = {k: v.contiguous(memory_format=torch.channels_last) for k, v in batch.items()}
        ctx.global_step = step
        losses = model.train_step(batch, ctx)
        for sched in schedulers.values():
            sched.step()
        for name, value in losses.items():
            value = value.detach().float()
            sums[name] = sums[name] + value if name in sums else value
        count += 1
        done = step + 1
        # Reading losses forces a device sync, so it happens only at log intervals.
        if done % train_cfg.log_every == 0 or done == total:
            last = {k: float(v) / count for k, v in sums.items()}
            sums, count = {}, 0
            if log is not None:
                log.append(done, last)
            bar.set_postfix({k: f"{v:.3g}" for k, v in list(last.items())[:6]}, refresh=False)
        bar.update(1)
        if on_step is not None:
            on_step(done, model, losses)
        if done % train_cfg.sample_every == 0 or done == total:
            sample(done)
        if done % train_cfg.checkpoint_every == 0 or done == total:
            checkpoint(done)
        if stop_after is not None and done - start >= stop_after:
            break
    bar.close()
    if dist_info.is_main and log is not None and log.path.stat().st_size:
        plot_losses(log.path, run_dir / "logs" / "losses.png")
    return TrainResult(run_dir, step + 1, last, time.perf_counter() - began)


def _maybe_compile(model: GANModel) -> GANModel:
    """Compile each network; a network that cannot compile stays eager, with a note."""
    for name in list(model.nets.keys()):
        try:
            model.nets[name] = torch.compile(model.nets[name])
        except Exception as exc:  # compile support varies by platform and version
            print(f"note: torch.compile failed for {name}; running eager ({exc})", file=sys.stderr)
    return model


def latest_step(run_dir: Path) -> int:
    steps = list_checkpoints(Path(run_dir) / "checkpoints")
    return max(steps) if steps else 0
