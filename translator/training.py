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
    clean_leftovers,
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
    restores_backend_flags,
    set_training_flags,
)
from .diffaugment import DiffAugment
from .errors import GantoolError
from .gan import GANModel, StepContext
from .imaging import plot_losses, save_grid
from .registry import get_registry
from .runs import (
    check_train_config,
    default_run_dir,
    describe_data,
    open_data,
    read_run_config,
    write_run_config,
)
from .safe_write import atomic_path
from .specs import ModelSpec
from .tensorboard_log import TensorBoardLog


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
    """Losses as CSV rows, one per log interval.

    A loss may first be returned after the first row (WGAN's generator loss every
    ``n_critic`` steps): the file is then rewritten with the wider header, earlier rows
    leaving its cell empty. On resume, rows past the resumed step are dropped, as is a row
    a kill cut short (its step may be a prefix of the real one).
    """

    def __init__(self, path: Path, resume_step: int | None) -> None:
        self.path = path
        self.columns: list[str] = []
        if resume_step is not None and path.is_file():
            rows = [r for r in self._rows() if _logged_step(r) <= resume_step]
            self._rewrite(rows)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("")

    def append(self, step: int, losses: dict[str, float]) -> None:
        new = [name for name in losses if name not in self.columns]
        if new:
            rows = self._rows() if self.columns else []
            self.columns += new
            self._rewrite(rows)
        with open(self.path, "a", newline="") as fh:
            writer = csv.DictWriter(fh, ["step", *self.columns])
            writer.writerow({"step": step, **{k: f"{v:.6g}" for k, v in losses.items()}})

    def _rows(self) -> list[dict[str, str]]:
        """The rows on disk; also takes the columns from the header."""
        with open(self.path, newline="") as fh:
            reader = csv.DictReader(fh)
            rows = list(reader)
        self.columns = [c for c in reader.fieldnames or [] if c != "step"]
        return rows

    def _rewrite(self, rows: list[dict[str, str]]) -> None:
        with atomic_path(self.path) as tmp, open(tmp, "w", newline="") as fh:
            if self.columns:
                writer = csv.DictWriter(fh, ["step", *self.columns], restval="")
                writer.writeheader()
                writer.writerows(rows)


def _logged_step(row: dict[str, str | None]) -> float:
    """A CSV row's step; infinity for a row with too few or too many cells (dropped)."""
    step = row.get("step") or ""
    whole = None not in row and None not in row.values()
    return int(step) if whole and step.isdigit() else math.inf


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


def training_state(
    step: int,
    model_name: str,
    optimizers: dict[str, torch.optim.Optimizer],
    schedulers: dict[str, Any],
    scalers: dict[int, Any],
    extras: list[Any],
    rng: list[dict[str, torch.Tensor]],
    fixed: dict[str, torch.Tensor] | None = None,
) -> dict[str, Any]:
    """What a checkpoint's ``state.pt`` holds besides the weights; ``train`` resumes from it.

    ``scalers`` are keyed by ``id(optimizer)``; ``extras`` and ``rng`` hold one entry per
    rank. Without ``fixed``, a resumed run takes its sample inputs from the data.
    """
    state = {
        "step": step,
        "model": model_name,
        "optimizers": {n: o.state_dict() for n, o in optimizers.items()},
        "schedulers": {n: s.state_dict() for n, s in schedulers.items()},
        "scalers": {n: scalers[id(o)].state_dict() for n, o in optimizers.items()
                    if id(o) in scalers},
        "extra": extras[0],
        "extra_ranks": extras,
        "rng": rng,
    }
    if fixed is not None:
        state["fixed"] = {k: v.cpu() for k, v in fixed.items()}
    return state


def create_run(run_dir: Path, spec: ModelSpec, train_cfg: TrainConfig, model_config: Any,
               model: GANModel, data: dict[str, Any]) -> Path:
    """A run folder whose step-0 checkpoint holds ``model``'s weights as they are.

    For weights made elsewhere (an imported file): the folder is an ordinary run, so
    ``translate`` and ``export`` use it, and ``train --resume`` continues from those
    weights with fresh optimizers (when ``train_cfg.data`` names training data).
    Returns the checkpoint folder.
    """
    if (run_dir / "config.json").exists():
        raise GantoolError(f"{run_dir} already holds a run; choose a new folder")
    run_dir.mkdir(parents=True, exist_ok=True)
    optimizers = model.configure_optimizers()
    schedulers = model.configure_schedulers(optimizers, train_cfg.steps or train_cfg.DEFAULT_STEPS)
    state = training_state(0, spec.name, optimizers, schedulers, {}, [model.extra_state()],
                           [_rng_state(torch.device("cpu"))])
    write_run_config(run_dir, spec, dataclasses.replace(train_cfg, model=spec.name),
                     model_config, data)
    return save_checkpoint(run_dir / "checkpoints", 0, model.nets.state_dict(), state)


@restores_backend_flags
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
        # A run killed before its first checkpoint starts again from step 0 with the
        # configuration it recorded: exactly what its first start would have done.
        if list_checkpoints(Path(resume) / "checkpoints"):
            folder = find_checkpoint(Path(resume) / "checkpoints")
            resume_state = (folder, load_state(folder), load_weights(folder))
    else:
        spec = get_registry().model(train_cfg.model)
        check_train_config(train_cfg, "training options")
    model_config = resolve_model_config(spec, model_config, train_cfg)

    dist_info = distributed_from_env()
    device = choose_device(train_cfg.device, dist_info.local_rank, announce=dist_info.is_main,
                           distributed=dist_info.enabled)
    init_process_group(dist_info, device)
    if train_cfg.deterministic and train_cfg.precision not in ("auto", "fp32"):
        raise GantoolError("--deterministic trains in fp32; leave out --precision")
    amp_dtype = None if train_cfg.deterministic else choose_precision(train_cfg.precision, device)
    set_training_flags(device, train_cfg.deterministic)

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
                _load_optimizer(opt, state["optimizers"][name])
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
            fixed = _matching_fixed(state.get("fixed", fixed), fixed, folder)
            rng = state["rng"]
        except (KeyError, ValueError, TypeError, IndexError, RuntimeError) as exc:
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
        clean_leftovers(run_dir / "checkpoints")
        if resume is None:
            write_run_config(run_dir, spec, dataclasses.replace(train_cfg, model=spec.name),
                             model_config, describe_data(domains))
    log = LossLog(run_dir / "logs" / "losses.csv", start if resume else None) \
        if dist_info.is_main else None
    board = TensorBoardLog.open(run_dir / "logs", start if resume else None) \
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
        state = training_state(step_done, spec.name, optimizers, schedulers, scalers, extras,
                               rng, fixed)
        # Losses summed since the last log row: a resumed run's next row then averages
        # the same steps as an uninterrupted run's.
        state["log_partial"] = {"counts": dict(counts),
                                "sums": {k: v.detach().cpu() for k, v in sums.items()}}
        save_checkpoint(run_dir / "checkpoints", step_done, model.nets.state_dict(), state)
        if board is not None:
            board.flush()  # a resumed run does not log these steps again
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
        if board is not None:
            board.grid(step_done, path)

    bar = tqdm(total=total, initial=start, desc=f"{spec.name}", unit="step",
               disable=not (progress and dist_info.is_main), dynamic_ncols=True,
               file=sys.stderr)
    model.train()
    # Per loss: a model may return some losses only on some steps (WGAN's generator loss
    # every n_critic steps), so each is averaged over the steps that returned it.
    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}
    if resume_state is not None and "log_partial" in resume_state[1]:
        partial = resume_state[1]["log_partial"]
        sums = {k: v.to(device) for k, v in partial["sums"].items()}
        counts = dict(partial["counts"])
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
            counts[name] = counts.get(name, 0) + 1
        done = step + 1
        # Reading losses forces a device sync, so it happens only at log intervals.
        if done % train_cfg.log_every == 0 or done == total:
            last = {k: float(v) / counts[k] for k, v in sums.items()}
            sums, counts = {}, {}
            if log is not None:
                log.append(done, last)
            if board is not None:
                board.scalars(done, last)
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
    if board is not None:
        board.close()
    if dist_info.is_main and log is not None and log.path.stat().st_size:
        plot_losses(log.path, run_dir / "logs" / "losses.png")
    return TrainResult(run_dir, step + 1, last, time.perf_counter() - began)


def _matching_fixed(saved: dict[str, torch.Tensor], fresh: dict[str, torch.Tensor],
                    folder: Path) -> dict[str, torch.Tensor]:
    """The checkpoint's fixed sample inputs, if they have the keys and shapes this model uses."""
    def shapes(d: dict[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
        return {k: tuple(v.shape) for k, v in d.items()}

    if shapes(saved) != shapes(fresh):
        raise GantoolError(f"checkpoint {folder / 'state.pt'} is damaged: its fixed sample inputs "
                           f"{shapes(saved)} do not fit this model's {shapes(fresh)}")
    return saved


def _maybe_compile(model: GANModel) -> GANModel:
    """Compile each network's ``forward`` in place; a network that cannot compile stays eager.

    In place, not wrapped: ``model.nets`` keeps the eager modules, so checkpoints keep their
    keys (a wrapper would add ``_orig_mod.``) and every later command can load them.
    Double backward (a gradient penalty) cannot go through a compiled graph, so
    :func:`~translator.gan.gradient_penalty` runs its network eagerly.
    """
    for name, net in model.nets.items():
        net.forward = _compiled_or_eager(name, net)
    return model


def _compiled_or_eager(name: str, net: torch.nn.Module) -> Callable[..., Any]:
    """``net.forward`` compiled; if compiling fails (at creation or, as compilation is lazy,
    at the first call: no C compiler, an unsupported operation), the eager one, with a note."""
    eager = net.forward

    def give_up(exc: Exception) -> Callable[..., Any]:
        cause = getattr(exc, "inner_exception", None) or exc  # the backend's own error
        text = str(cause).strip()
        why = f"{type(cause).__name__}: {text.splitlines()[0]}" if text else type(cause).__name__
        print(f"note: torch.compile failed for {name}; running it eager ({why[:200]})",
              file=sys.stderr)
        net.forward = eager
        return eager

    try:
        compiled = torch.compile(eager)
    except Exception as exc:  # compile support varies by platform and version
        return give_up(exc)

    def first_call(*args: Any, **kwargs: Any) -> Any:
        try:
            out = compiled(*args, **kwargs)
        except Exception as exc:
            return give_up(exc)(*args, **kwargs)
        net.forward = compiled
        return out

    return first_call


# Chosen by the optimizer's maker for this device (fused Adam on CUDA), not run state.
_IMPLEMENTATION_FLAGS = ("fused", "foreach", "capturable", "differentiable")


def _load_optimizer(opt: torch.optim.Optimizer, saved: dict[str, Any]) -> None:
    """Load an optimizer's state saved on any device, fitted to this one.

    The saved groups carry the saving device's implementation flags (CPU -> GPU would drop
    fused Adam), and the state tensors its memory layout (GPU -> CPU would pair
    channels-last moments with contiguous parameters): both follow this run's optimizer.
    """
    own = [{k: g[k] for k in _IMPLEMENTATION_FLAGS if k in g} for g in opt.param_groups]
    groups = [{**g, **flags} for g, flags in zip(saved["param_groups"], own, strict=True)]
    opt.load_state_dict({**saved, "param_groups": groups})
    for param, state in opt.state.items():
        for key, value in state.items():
            if (isinstance(value, torch.Tensor) and value.shape == param.shape
                    and value.stride() != param.stride()):
                state[key] = torch.empty_like(param, dtype=value.dtype).copy_(value)


def latest_step(run_dir: Path) -> int:
    steps = list_checkpoints(Path(run_dir) / "checkpoints")
    return max(steps) if steps else 0
