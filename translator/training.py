"""The training loop every plugin shares.

The model owns its step (:meth:`GANModel.train_step`); this module owns devices, mixed
precision, multi-process training, checkpoints, logs, sample grids and progress.

:func:`train` is the loop; what it needs is made before it, in three parts below it:
:func:`setup_run` (the run, ready for its first step), :func:`capture_state` and
:func:`restore_state` (the training state a checkpoint holds, both ways) and
:class:`RunOutputs` (logs, sample grids and checkpoints).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import inspect
import io
import math
import os
import sys
import time
from collections.abc import Callable, Mapping
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
    load_average,
    load_into,
    load_state,
    load_weights,
    prune_checkpoints,
    save_checkpoint,
)
from .config import TrainConfig, flag_name, resumable
from .cpu import Machine, plan_cpu
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
from .ema import WeightAverage
from .errors import GantoolError
from .gan import GANModel, StepContext
from .imaging import grid_image, plot_losses, save_image
from .registry import get_registry
from .runs import (
    alignment_line,
    check_train_config,
    default_run_dir,
    describe_data,
    open_data,
    read_run_config,
    run_lock,
    write_run_config,
)
from .safe_write import append_text, atomic_path, remove_stale_temporaries, write_text_atomic
from .specs import ModelSpec
from .tensorboard_log import TensorBoardLog


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
        for sched in run.schedulers.values():
            sched.step()
        if run.average is not None:
            run.average.update(step)
        run.partial.add(losses)
        done = step + 1
        # Reading losses forces a device sync, so it happens only at log intervals.
        if done % cfg.log_every == 0 or done == run.total:
            last = run.partial.take_means()
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


# -- Phase 1: run set-up ---------------------------------------------------------------

@dataclass
class Run:
    """A run ready for its first step: what :func:`setup_run` made and the loop uses."""

    cfg: TrainConfig
    spec: ModelSpec
    dist: Distributed
    device: torch.device
    run_dir: Path
    model: GANModel
    optimizers: dict[str, torch.optim.Optimizer]
    schedulers: dict[str, Any]
    scalers: dict[int, Any]
    ctx: StepContext
    fixed: dict[str, torch.Tensor]
    loader: torch.utils.data.DataLoader
    start: int
    total: int
    resumed: bool
    #: Losses summed since the last log row; checkpointed so a resumed run's next row
    #: averages the same steps as an uninterrupted run's.
    partial: LossSums
    #: The generators' moving average (``--ema``), or None.
    average: WeightAverage | None = None

    @property
    def cuda_graphs(self) -> bool:
        """Whether the networks replay CUDA graphs (``--compile --cuda-graphs`` on CUDA)."""
        return self.cfg.compile and compile_mode(self.cfg, self.device) == "reduce-overhead"

    def to_device(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        if self.device.type == "cuda":  # channels-last, as the model is
            batch = {k: v.contiguous(memory_format=torch.channels_last) for k, v in batch.items()}
        return batch


def setup_run(train_cfg: TrainConfig, model_config: Any, resume: Path | None,
              held: contextlib.ExitStack, changes: Mapping[str, Any] | None = None) -> Run:
    """Everything before the first step: configuration (or the resumed run's), device,
    data, run folder, caches, model, optimizers, restored state and the batch loader.
    The run folder stays locked to this process until ``held`` closes.

    The order matters for exact resume: weights are made from the seed before any
    state is restored, and nothing draws from the global random stream after it.
    """
    if changes and resume is None:
        raise GantoolError("changes apply to a resumed run only")
    spec, train_cfg, model_config, resume_from = _resolve_run(train_cfg, model_config, resume,
                                                              changes or {})
    check_training_size(spec, model_config, train_cfg.size)
    dist_info = distributed_from_env()
    # Read before this process does any work of its own, so that only other work counts.
    machine = Machine.read(int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    device, amp_dtype = _start_device(train_cfg, dist_info)
    train_cfg, domains, augment = _open_training_data(train_cfg, spec, dist_info)
    workers = _share_cpu(machine, train_cfg, domains, device, dist_info, held)
    total = total_steps_for(train_cfg, domains, dist_info.world_size)
    run_dir = _run_dir(train_cfg, spec, dist_info)
    if dist_info.is_main:
        held.enter_context(run_lock(run_dir))
    if resume is None and (run_dir / "config.json").exists():  # checked under the lock
        raise GantoolError(f"{run_dir} already holds a run; use --resume {run_dir} or a new --out")
    if dist_info.is_main:
        # Before anything can end set-up: a run killed while pruning after its final
        # checkpoint is reported finished below, and must not keep its leftovers.
        clean_leftovers(run_dir / "checkpoints")
        remove_stale_files(run_dir)
    caches: dict[str, Any] = {}
    if train_cfg.cache and dist_info.is_main:
        caches = create_caches(domains, run_dir / "cache", train_cfg.size, augment)
    if dist_info.enabled:
        # Rank 0 writes config.json below (and made the caches): no rank may look for it
        # after that, and the other ranks open the caches only once they exist.
        import torch.distributed as dist

        dist.barrier()

    model, optimizers, schedulers, scalers, ctx = _build_model(
        spec, model_config, train_cfg, device, amp_dtype, dist_info, total)
    test_domains = open_data(train_cfg, spec.kind, "test")
    generator = torch.Generator().manual_seed(train_cfg.seed)
    fixed = model.fixed_inputs(fixed_examples(test_domains, train_cfg.size), generator)
    start, partial = 0, LossSums()
    if resume_from is not None:
        folder, state, weights = resume_from
        if state.get("model") != spec.name:
            raise GantoolError(f"checkpoint {folder} is of model '{state.get('model')}'")
        load_into(model.nets, weights, folder)
        start, fixed, partial = restore_state(state, folder, model, optimizers, schedulers,
                                              scalers, dist_info, device, fixed)
        if start >= total:
            if dist_info.is_main:
                redraw_missing_plot(run_dir)  # a kill during the final plot left none
            raise GantoolError(f"{run_dir} already finished {start} of {total} steps; "
                               f"pass --steps above {start} to train further")
    else:
        # Different noise per rank from here on; weights were made identical above.
        torch.manual_seed(train_cfg.seed * 1000 + dist_info.rank + 1)
    average = _weight_average(model, train_cfg.ema, resume_from[0] if resume_from else None)
    if train_cfg.compile:
        model = _maybe_compile(model, compile_mode(train_cfg, device))

    if dist_info.is_main:
        _prepare_run_dir(run_dir, spec, train_cfg, model_config, domains, fresh=resume is None)
    if train_cfg.cache and not dist_info.is_main:
        caches = create_caches(domains, run_dir / "cache", train_cfg.size, augment)
    loader = _batch_loader(domains, train_cfg, augment, (start, total), workers, dist_info,
                           device, caches)
    return Run(train_cfg, spec, dist_info, device, run_dir, model, optimizers, schedulers,
               scalers, ctx, fixed, loader, start, total, resume is not None, partial, average)


def _weight_average(model: GANModel, decay: float, checkpoint: Path | None) -> WeightAverage | None:
    """The run's average of its generators' weights: the checkpoint's when resuming, else
    the weights as they are now (a checkpoint without one, e.g. an import's, too)."""
    if decay <= 0:
        return None
    average = WeightAverage(model, decay)
    saved = load_average(checkpoint) if checkpoint is not None else None
    if saved is not None:
        average.load(saved)
    return average


def _resolve_run(
    train_cfg: TrainConfig, model_config: Any, resume: Path | None, changes: Mapping[str, Any]
) -> tuple[ModelSpec, TrainConfig, Any, tuple[Path, dict[str, Any], dict[str, torch.Tensor]] | None]:
    """The model, configurations and (on resume) checkpoint a run starts from.

    A resumed run takes the configuration it recorded with ``changes`` (and
    ``train_cfg.steps``, and its ``device`` when not ``auto``) applied.
    """
    resume_from = None
    if resume is not None:
        rc = read_run_config(resume)
        if train_cfg.model and train_cfg.model != rc.spec.name:
            raise GantoolError(
                f"{resume} is a run of model '{rc.spec.name}', not '{train_cfg.model}'"
            )
        given: dict[str, Any] = {"steps": train_cfg.steps} if train_cfg.steps is not None else {}
        if train_cfg.device != "auto":
            given["device"] = train_cfg.device
        spec, model_config = rc.spec, rc.model_config
        train_cfg = resumed_config(rc.train, {**given, **changes}, str(resume))
        # A run killed before its first checkpoint starts again from step 0 with the
        # configuration it recorded: exactly what its first start would have done.
        if list_checkpoints(Path(resume) / "checkpoints"):
            folder = find_checkpoint(Path(resume) / "checkpoints")
            resume_from = (folder, load_state(folder), load_weights(folder))
    else:
        spec = get_registry().model(train_cfg.model)
        check_train_config(train_cfg, "training options", model_config)
    return spec, train_cfg, resolve_model_config(spec, model_config, train_cfg), resume_from


def resumed_config(recorded: TrainConfig, changes: Mapping[str, Any], out: str) -> TrainConfig:
    """A resumed run's options: those it recorded, with ``changes`` to fields that may
    change on resume (refused by name otherwise); new steps or epochs replace both."""
    fixed = sorted(k for k in changes if not resumable(k))
    if fixed:
        raise GantoolError(f"{flag_name(fixed[0])} cannot change on --resume")
    if "steps" in changes or "epochs" in changes:
        recorded = dataclasses.replace(recorded, steps=None, epochs=None)
    train_cfg = dataclasses.replace(recorded, out=out, **changes)
    check_train_config(train_cfg, "--resume")
    return train_cfg


def check_training_size(spec: ModelSpec, model_config: Any, size: int) -> None:
    """Refuse a ``--size`` the model's generators cannot take, before anything is written
    (it would otherwise fail at the first step, and again on every resume). The model is
    built once on the side, without touching the random streams the run draws from."""
    with torch.random.fork_rng(devices=[]):
        model = spec.build(model_config)
    for gen in model.generators().values():
        mult = gen.size_multiple
        if gen.kind == "translation" and size % mult:
            below, above = size // mult * mult, (size // mult + 1) * mult
            sizes = f"--size {below} or {above}" if below >= 8 else f"--size {above}"
            raise GantoolError(f"--size {size} does not suit {spec.name}: its generators take "
                               f"sides that are multiples of {mult}; use {sizes}")


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


def _start_device(train_cfg: TrainConfig,
                  dist_info: Distributed) -> tuple[torch.device, torch.dtype | None]:
    """The device (joining the process group under torchrun) and the autocast dtype."""
    device = choose_device(train_cfg.device, dist_info.local_rank, announce=dist_info.is_main,
                           distributed=dist_info.enabled)
    init_process_group(dist_info, device)
    if train_cfg.deterministic and train_cfg.precision not in ("auto", "fp32"):
        raise GantoolError("--deterministic trains in fp32; leave out --precision")
    amp_dtype = None if train_cfg.deterministic else choose_precision(train_cfg.precision, device)
    set_training_flags(device, train_cfg.deterministic)
    return device, amp_dtype


def _open_training_data(
    train_cfg: TrainConfig, spec: ModelSpec, dist_info: Distributed
) -> tuple[TrainConfig, dict[str, ImageList], Any]:
    """The training images, and the augmentation chosen for them (which the returned
    configuration records)."""
    domains = limit_images(open_data(train_cfg, spec.kind, "train"), train_cfg.max_images)
    for lst in domains.values():
        for note in lst.notes:
            if dist_info.is_main:
                print(f"note: {note}", file=sys.stderr)
    train_cfg, augment, augment_line = choose_augmentation(train_cfg, spec, domains)
    if dist_info.is_main:
        print(augment_line, file=sys.stderr)
        align_line = alignment_line(train_cfg)
        if align_line:
            print(align_line, file=sys.stderr)
    return train_cfg, domains, augment


def _run_dir(train_cfg: TrainConfig, spec: ModelSpec, dist_info: Distributed) -> Path:
    run_dir = Path(train_cfg.out) if train_cfg.out else default_run_dir(spec.name)
    if dist_info.enabled and not train_cfg.out:
        # A timestamped name may differ between ranks by a second: rank 0's wins.
        import torch.distributed as dist

        names = [str(run_dir)]
        dist.broadcast_object_list(names, src=0)
        run_dir = Path(names[0])
    return run_dir


def _build_model(
    spec: ModelSpec, model_config: Any, train_cfg: TrainConfig, device: torch.device,
    amp_dtype: torch.dtype | None, dist_info: Distributed, total: int,
) -> tuple[GANModel, dict[str, torch.optim.Optimizer], dict[str, Any], dict[int, Any], StepContext]:
    """The model on its device with its optimizers, schedulers, gradient scalers and step
    context."""
    # Same seed on every rank: identical initial weights without a broadcast.
    torch.manual_seed(train_cfg.seed)
    model: GANModel = spec.build(model_config)
    if model.kind != spec.kind:
        raise GantoolError(f"model '{spec.name}' built a {model.kind} model, spec says {spec.kind}")
    model.to(device)
    if device.type == "cuda":
        # Module.to takes memory_format at run time; torch's typed overloads leave it out.
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    optimizers = model.configure_optimizers()
    schedulers = model.configure_schedulers(optimizers, total)
    scalers: dict[int, Any] = {}
    if amp_dtype == torch.float16:
        scalers = {id(o): torch.amp.GradScaler("cuda") for o in optimizers.values()}
    diffaug = DiffAugment(train_cfg.diffaug, train_cfg.seed, dist_info.rank, device)
    ctx = StepContext(device, amp_dtype, scalers, dist_info.world_size, diffaug or None)
    ctx.total_steps = total
    return model, optimizers, schedulers, scalers, ctx


def compile_mode(train_cfg: TrainConfig, device: torch.device) -> str | None:
    """``torch.compile``'s mode for ``--compile``: CUDA graphs (``reduce-overhead``) with
    ``--cuda-graphs`` on CUDA, else the default (None)."""
    return "reduce-overhead" if train_cfg.cuda_graphs and device.type == "cuda" else None


def _maybe_compile(model: GANModel, mode: str | None = None) -> GANModel:
    """Compile each network's ``forward`` in place; a network that cannot compile stays eager.

    In place, not wrapped: ``model.nets`` keeps the eager modules, so checkpoints keep their
    keys (a wrapper would add ``_orig_mod.``) and every later command can load them.
    Double backward (a gradient penalty) cannot go through a compiled graph, so
    :func:`~translator.gan.gradient_penalty` runs its network eagerly.
    """
    for name, net in model.nets.items():
        net.forward = _compiled_or_eager(name, net, mode)
    return model


def _compiled_or_eager(name: str, net: torch.nn.Module, mode: str | None = None) -> Callable[..., Any]:
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
        compiled = torch.compile(eager, mode=mode)
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


def _prepare_run_dir(run_dir: Path, spec: ModelSpec, train_cfg: TrainConfig, model_config: Any,
                     domains: dict[str, ImageList], fresh: bool) -> None:
    for sub in ("checkpoints", "samples", "logs"):
        (run_dir / sub).mkdir(parents=True, exist_ok=True)
    if fresh:
        write_run_config(run_dir, spec, dataclasses.replace(train_cfg, model=spec.name),
                         model_config, describe_data(domains))


def _share_cpu(machine: Machine, train_cfg: TrainConfig, domains: dict[str, ImageList],
               device: torch.device, dist_info: Distributed, held: contextlib.ExitStack) -> int:
    """Set torch's CPU threads for the run (put back when ``held`` closes) and say how
    the cores are shared; returns the loader processes."""
    file_data = any(
        len(d) > 0 and isinstance(d.items[0], os.PathLike) for d in domains.values()
    )
    plan = plan_cpu(machine, on_cuda=device.type == "cuda", file_data=file_data,
                    threads=train_cfg.threads, workers=train_cfg.workers)
    if plan.threads is not None and plan.threads != torch.get_num_threads():
        held.callback(torch.set_num_threads, torch.get_num_threads())
        torch.set_num_threads(plan.threads)
    if dist_info.is_main:
        print(plan.line, file=sys.stderr)
    return plan.workers


def _batch_loader(domains: dict[str, ImageList], train_cfg: TrainConfig, augment: Any,
                  steps: tuple[int, int], workers: int, dist_info: Distributed,
                  device: torch.device, caches: dict[str, Any]) -> torch.utils.data.DataLoader:
    """Batches of steps ``start`` to ``total`` (``steps``): step ``i``'s batch is the
    same whether or not the run was interrupted before it."""
    start, total = steps
    batches = StepBatches(domains, train_cfg.batch_size, train_cfg.size, augment,
                          train_cfg.seed, total, dist_info.rank, dist_info.world_size, caches)
    return torch.utils.data.DataLoader(
        batches, batch_size=None, sampler=range(start, total), num_workers=workers,
        pin_memory=device.type == "cuda", persistent_workers=False,
        prefetch_factor=4 if workers else None,
        # Its own generator: otherwise creating the iterator draws from the global RNG,
        # which would shift the model's noise on resume.
        generator=torch.Generator().manual_seed(train_cfg.seed),
    )


# -- Phase 2: training state, captured and restored from the same keys ------------------

class LossSums:
    """Per loss, its sum and count since the last log row.

    A model may return some losses only on some steps (WGAN's generator loss every
    ``n_critic`` steps), so each is averaged over the steps that returned it.
    """

    def __init__(self, sums: dict[str, torch.Tensor] | None = None,
                 counts: dict[str, int] | None = None) -> None:
        self.sums = sums or {}
        self.counts = counts or {}

    def add(self, losses: dict[str, torch.Tensor]) -> None:
        for name, value in losses.items():
            value = value.detach().float()
            self.sums[name] = self.sums[name] + value if name in self.sums else value
            self.counts[name] = self.counts.get(name, 0) + 1

    def take_means(self) -> dict[str, float]:
        """The means so far (a device sync), starting the next interval afresh."""
        means = {k: float(v) / self.counts[k] for k, v in self.sums.items()}
        self.sums, self.counts = {}, {}
        return means

    def state_dict(self) -> dict[str, Any]:
        return {"counts": dict(self.counts),
                "sums": {k: v.detach().cpu() for k, v in self.sums.items()}}

    @classmethod
    def from_state(cls, saved: dict[str, Any], device: torch.device) -> LossSums:
        return cls({k: v.to(device) for k, v in saved["sums"].items()}, dict(saved["counts"]))


def capture_state(
    step: int,
    model_name: str,
    model: GANModel,
    optimizers: dict[str, torch.optim.Optimizer],
    schedulers: dict[str, Any],
    scalers: dict[int, Any],
    dist_info: Distributed | None = None,
    device: torch.device | None = None,
    fixed: dict[str, torch.Tensor] | None = None,
    partial: LossSums | None = None,
) -> dict[str, Any] | None:
    """What a checkpoint's ``state.pt`` holds besides the weights; :func:`restore_state`
    puts it back.

    Collective under torchrun: every rank calls it, and rank 0 gets the state (the other
    ranks None), with each rank's extra state and random streams. ``scalers`` are keyed
    by ``id(optimizer)``. Without ``fixed``, a resumed run takes its sample inputs from
    the data; without ``partial``, its first log row averages only the steps it trains.
    """
    dist_info = dist_info or Distributed()
    device = device or torch.device("cpu")
    rng = _gather(dist_info, {k: v.cpu() for k, v in _rng_state(device).items()})
    extras = _gather(dist_info, model.extra_state())
    if not dist_info.is_main:
        return None
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
    if partial is not None:
        state["log_partial"] = partial.state_dict()
    return state


def restore_state(
    state: dict[str, Any],
    folder: Path,
    model: GANModel,
    optimizers: dict[str, torch.optim.Optimizer],
    schedulers: dict[str, Any],
    scalers: dict[int, Any],
    dist_info: Distributed,
    device: torch.device,
    fixed: dict[str, torch.Tensor],
) -> tuple[int, dict[str, torch.Tensor], LossSums]:
    """Put back what :func:`capture_state` took (into this rank), from checkpoint ``folder``.

    Returns the step it was taken at, the fixed sample inputs (``fixed``, the fresh ones,
    where it has none) and the partial loss sums.
    """
    try:
        for name, opt in optimizers.items():
            _load_optimizer(opt, state["optimizers"][name])
        for name, sched in schedulers.items():
            _check_layout(sched.state_dict(), state["schedulers"][name], f"scheduler {name}")
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
    partial = LossSums()
    if "log_partial" in state:
        partial = LossSums.from_state(state["log_partial"], device)
    return int(state["step"]), fixed, partial


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
    for group in groups:
        _check_hyperparameters(opt, group)
    opt.load_state_dict({**saved, "param_groups": groups})
    for param, state in opt.state.items():
        for key, value in state.items():
            _check_moment(param, key, value)
            if value.shape == param.shape and value.stride() != param.stride():
                state[key] = torch.empty_like(param, dtype=value.dtype).copy_(value)


def _check_hyperparameters(opt: torch.optim.Optimizer, group: dict[str, Any]) -> None:
    """A saved parameter group's learning rate, betas... held to the checks the optimizer's
    own constructor makes (torch checks them only there, not on loading)."""
    accepted = inspect.signature(type(opt)).parameters
    hyper = {k: v for k, v in group.items() if k in accepted and k != "params"}
    try:
        type(opt)([torch.zeros(1, requires_grad=True)], **hyper)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"its optimizer settings are invalid: {exc}") from None


def _check_moment(param: torch.Tensor, key: str, value: Any) -> None:
    """An optimizer's per-parameter state is a tensor of the parameter's shape, or a
    single number (the step count); anything else breaks the next update."""
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"optimizer state '{key}' must be a tensor")
    if value.dim() != 0 and value.shape != param.shape:
        raise ValueError(f"optimizer state '{key}' has shape {list(value.shape)}, "
                         f"its parameter {list(param.shape)}")


def _check_layout(fresh: Any, saved: Any, what: str) -> None:
    """``saved`` has ``fresh``'s shape: the same kinds of values for the keys both hold,
    lists of the same length, finite numbers. A scheduler loads any dict without a look,
    and a short list fails only at its next step."""
    if isinstance(fresh, dict):
        if not isinstance(saved, dict):
            raise ValueError(f"{what} must be a dict")
        for key in fresh.keys() & saved.keys():
            _check_layout(fresh[key], saved[key], f"{what}: '{key}'")
    elif isinstance(fresh, list | tuple):
        if not isinstance(saved, list | tuple) or len(saved) != len(fresh):
            raise ValueError(f"{what} must be a list of {len(fresh)}")
        for a, b in zip(fresh, saved, strict=True):
            _check_layout(a, b, what)
    elif isinstance(fresh, int | float) and not isinstance(fresh, bool):
        if isinstance(saved, bool) or not isinstance(saved, int | float) or not math.isfinite(saved):
            raise ValueError(f"{what} must be a finite number, not {saved!r:.40}")


def _matching_fixed(saved: dict[str, torch.Tensor], fresh: dict[str, torch.Tensor],
                    folder: Path) -> dict[str, torch.Tensor]:
    """The checkpoint's fixed sample inputs, if they have the keys and shapes this model uses."""
    def layout(d: dict[str, torch.Tensor]) -> dict[str, str]:
        # The dtype too: the networks take the dtype they were made for, not float64 or int32.
        return {k: f"{str(v.dtype).removeprefix('torch.')} {list(v.shape)}" for k, v in d.items()}

    if layout(saved) != layout(fresh):
        raise GantoolError(f"checkpoint {folder / 'state.pt'} is damaged: its fixed sample inputs "
                           f"{layout(saved)} do not fit this model's {layout(fresh)}")
    return saved


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
    state = capture_state(0, spec.name, model, optimizers, schedulers, {})
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
            images, nrow = run.model.sample_grid({k: v.to(run.device) for k, v in run.fixed.items()})
        run.model.train(was_training)
        grid = grid_image(to_uint8(images), nrow)
        save_image(grid, run.run_dir / "samples" / f"step-{step:07d}.png")
        if self.board is not None:
            self.board.grid(step, grid)

    def checkpoint(self, step: int) -> None:
        run = self.run
        state = capture_state(step, run.spec.name, run.model, run.optimizers, run.schedulers,
                              run.scalers, run.dist, run.device, run.fixed, run.partial)
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


def remove_stale_files(run_dir: Path) -> None:
    """Temporaries a kill left between a write and its rename (``logs/.losses.tmp-*.png``)."""
    for sub in (".", "logs", "samples", "cache"):
        remove_stale_temporaries(run_dir / sub)


def redraw_missing_plot(run_dir: Path) -> None:
    """The loss plot of a finished run, if the end of the run did not get to draw it."""
    logs = run_dir / "logs"
    csv_path = logs / "losses.csv"
    if not (logs / "losses.png").exists() and csv_path.is_file() and csv_path.stat().st_size:
        plot_losses(csv_path, logs / "losses.png")


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
