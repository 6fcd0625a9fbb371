"""A run, ready for its first step: :func:`setup_run` and the :class:`Run` it returns.

Configuration (or the resumed run's), device, data, run folder, caches, model, training
state and the batch loader, in the order exact resume needs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..config import TrainConfig, flag_name, resumable
from ..cpu import Machine, plan_cpu
from ..data import ImageList
from ..data.datasets import alignment_line, describe_data, open_data
from ..data.pipeline import StepBatches, create_caches, fixed_examples, limit_images
from ..errors import GantoolError
from ..registry import get_registry
from ..specs import ModelSpec
from .augmentation import choose_augmentation
from .checkpoint import (
    clean_leftovers,
    find_checkpoint,
    list_checkpoints,
    load_average,
    load_into,
    load_state,
    load_weights,
)
from .compile import compile_mode, maybe_compile
from .device import (
    Distributed,
    choose_device,
    choose_precision,
    distributed_from_env,
    init_process_group,
    set_training_flags,
)
from .diffaugment import DiffAugment
from .ema import WeightAverage
from .gan import GANModel, StepContext
from .runs import (
    check_train_config,
    default_run_dir,
    read_run_config,
    redraw_missing_plot,
    remove_stale_files,
    run_lock,
    write_run_config,
)
from .state import TrainingState

#: A checkpoint to resume from: its folder, its training state and its weights.
Checkpoint = tuple[Path, dict[str, Any], dict[str, torch.Tensor]]


@dataclass
class Run:
    """A run ready for its first step: what :func:`setup_run` made and the loop uses."""

    cfg: TrainConfig
    spec: ModelSpec
    dist: Distributed
    device: torch.device
    run_dir: Path
    model: GANModel
    #: Optimizers, schedulers, scalers, fixed inputs, loss sums: what checkpoints hold.
    state: TrainingState
    ctx: StepContext
    loader: torch.utils.data.DataLoader
    #: The step this call starts at (the checkpoint's on resume) and the run's last.
    start: int
    total: int
    resumed: bool
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


@dataclass
class TrainingData:
    """The training images, the augmentation chosen for them, and their decoded caches."""

    domains: dict[str, ImageList]
    augment: Any
    caches: dict[str, Any] = field(default_factory=dict)


def setup_run(train_cfg: TrainConfig, model_config: Any, resume: Path | None,
              held: contextlib.ExitStack, changes: Mapping[str, Any] | None = None) -> Run:
    """Everything before the first step: configuration (or the resumed run's), device,
    data, run folder, caches, model, training state and the batch loader.
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
    train_cfg, data = _open_training_data(train_cfg, spec, dist_info)
    workers = _share_cpu(machine, train_cfg, data.domains, device, dist_info, held)
    total = total_steps_for(train_cfg, data.domains, dist_info.world_size)
    run_dir = _run_dir(train_cfg, spec, dist_info)
    _claim_run_dir(run_dir, resume is not None, dist_info, held)
    if train_cfg.cache and dist_info.is_main:
        data.caches = create_caches(data.domains, run_dir / "cache", train_cfg.size, data.augment)
    if dist_info.enabled:
        # Rank 0 writes config.json below (and made the caches): no rank may look for it
        # after that, and the other ranks open the caches only once they exist.
        import torch.distributed as dist

        dist.barrier()

    model, state, ctx = _build_model(spec, model_config, train_cfg, (device, amp_dtype),
                                     dist_info, total)
    test_domains = open_data(train_cfg, spec.kind, "test")
    generator = torch.Generator().manual_seed(train_cfg.seed)
    state.fixed = model.fixed_inputs(fixed_examples(test_domains, train_cfg.size), generator)
    if resume_from is not None:
        _restore(state, resume_from, total, run_dir)
    else:
        # Different noise per rank from here on; weights were made identical above.
        torch.manual_seed(train_cfg.seed * 1000 + dist_info.rank + 1)
    average = _weight_average(model, train_cfg.ema, resume_from[0] if resume_from else None)
    if train_cfg.compile:
        model = maybe_compile(model, compile_mode(train_cfg, device))

    if dist_info.is_main:
        _prepare_run_dir(run_dir, spec, train_cfg, model_config, data.domains, fresh=resume is None)
    if train_cfg.cache and not dist_info.is_main:
        data.caches = create_caches(data.domains, run_dir / "cache", train_cfg.size, data.augment)
    loader = _batch_loader(data, train_cfg, (state.step, total), workers, dist_info, device)
    return Run(train_cfg, spec, dist_info, device, run_dir, model, state, ctx, loader,
               state.step, total, resume is not None, average)


def _claim_run_dir(run_dir: Path, resuming: bool, dist_info: Distributed,
                   held: contextlib.ExitStack) -> None:
    """Lock the run folder (main process) and refuse one that holds another run."""
    if dist_info.is_main:
        held.enter_context(run_lock(run_dir))
    if not resuming and (run_dir / "config.json").exists():  # checked under the lock
        raise GantoolError(f"{run_dir} already holds a run; use --resume {run_dir} or a new --out")
    if dist_info.is_main:
        # Before anything can end set-up: a run killed while pruning after its final
        # checkpoint is reported finished below, and must not keep its leftovers.
        clean_leftovers(run_dir / "checkpoints")
        remove_stale_files(run_dir)


def _restore(state: TrainingState, resume_from: Checkpoint, total: int, run_dir: Path) -> None:
    """Put the checkpoint's weights and state back; refuse a run that has finished."""
    folder, saved, weights = resume_from
    if saved.get("model") != state.model_name:
        raise GantoolError(f"checkpoint {folder} is of model '{saved.get('model')}'")
    load_into(state.model.nets, weights, folder)
    state.load_state_dict(saved, folder)
    if state.step >= total:
        if state.dist.is_main:
            redraw_missing_plot(run_dir)  # a kill during the final plot left none
        raise GantoolError(f"{run_dir} already finished {state.step} of {total} steps; "
                           f"pass --steps above {state.step} to train further")


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
) -> tuple[ModelSpec, TrainConfig, Any, Checkpoint | None]:
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
) -> tuple[TrainConfig, TrainingData]:
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
    return train_cfg, TrainingData(domains, augment)


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
    spec: ModelSpec, model_config: Any, train_cfg: TrainConfig,
    placement: tuple[torch.device, torch.dtype | None], dist_info: Distributed, total: int,
) -> tuple[GANModel, TrainingState, StepContext]:
    """The model on its device (``placement``: the device and the autocast dtype) with its
    training state (optimizers, schedulers, gradient scalers) and step context."""
    device, amp_dtype = placement
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
    state = TrainingState(spec.name, model, optimizers, schedulers, scalers,
                          dist=dist_info, device=device)
    diffaug = DiffAugment(train_cfg.diffaug, train_cfg.seed, dist_info.rank, device)
    ctx = StepContext(device, amp_dtype, scalers, dist_info.world_size, diffaug or None)
    ctx.total_steps = total
    return model, state, ctx


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


def _batch_loader(data: TrainingData, train_cfg: TrainConfig, steps: tuple[int, int],
                  workers: int, dist_info: Distributed,
                  device: torch.device) -> torch.utils.data.DataLoader:
    """Batches of steps ``start`` to ``total`` (``steps``): step ``i``'s batch is the
    same whether or not the run was interrupted before it."""
    start, total = steps
    batches = StepBatches(data.domains, train_cfg.batch_size, train_cfg.size, data.augment,
                          train_cfg.seed, total, dist_info.rank, dist_info.world_size, data.caches)
    return torch.utils.data.DataLoader(
        batches, batch_size=None, sampler=range(start, total), num_workers=workers,
        pin_memory=device.type == "cuda", persistent_workers=False,
        prefetch_factor=4 if workers else None,
        # Its own generator: otherwise creating the iterator draws from the global RNG,
        # which would shift the model's noise on resume.
        generator=torch.Generator().manual_seed(train_cfg.seed),
    )
