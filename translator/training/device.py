"""Devices, precision and the torchrun environment."""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import ParamSpec, TypeVar

import torch

from ..errors import GantoolError


@dataclass(frozen=True)
class Distributed:
    """The process's place in a ``torchrun`` job (rank 0 of 1 when run plainly)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def distributed_from_env() -> Distributed:
    """Read torchrun's ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Distributed()
    return Distributed(int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0")), world)


#: How long a rank waits in a collective. Long, because the other ranks wait in the first
#: barrier while rank 0 decodes the whole data set into the cache (minutes for a large set);
#: the default (10 minutes with NCCL) would kill the job before training starts.
SETUP_TIMEOUT = timedelta(hours=1)


def init_process_group(dist_info: Distributed, device: torch.device) -> None:
    import torch.distributed as dist

    if dist_info.enabled and not dist.is_initialized():
        if device.type == "cuda":
            # device_id binds NCCL to this rank's GPU now, instead of guessing it later.
            dist.init_process_group(backend="nccl", timeout=SETUP_TIMEOUT, device_id=device)
        else:
            dist.init_process_group(backend="gloo", timeout=SETUP_TIMEOUT)


def choose_device(
    name: str, local_rank: int = 0, announce: bool = True, distributed: bool = False
) -> torch.device:
    """``auto`` takes CUDA when present (saying so when it is not), else the named device.

    Under torchrun (``distributed``) each process takes the GPU of its local rank, so a
    device with an index, which would put every process on one GPU, is refused.
    """
    if distributed and name.startswith("cuda:"):
        raise GantoolError(f"--device {name} would put every process on one GPU; under torchrun "
                           "use --device cuda (each process takes the GPU of its LOCAL_RANK)")
    if name == "auto":
        if torch.cuda.is_available():
            device = torch.device("cuda", local_rank % torch.cuda.device_count())
        else:
            if announce:
                print("note: no CUDA device found; training on the CPU", file=sys.stderr)
            device = torch.device("cpu")
    else:
        try:
            device = torch.device(name)
        except RuntimeError:
            raise GantoolError(f"unknown device '{name}'; use auto, cpu, cuda or cuda:N") from None
        if device.type == "cuda":
            if not torch.cuda.is_available():
                raise GantoolError("--device cuda was asked for, but no CUDA device is available")
            index = device.index if device.index is not None else local_rank
            if index >= torch.cuda.device_count():
                raise GantoolError(
                    f"cuda:{index} does not exist; {torch.cuda.device_count()} CUDA device(s)"
                )
            device = torch.device("cuda", index)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return device


def choose_precision(name: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for plain fp32."""
    if name == "fp32" or (name == "auto" and device.type != "cuda"):
        return None
    if device.type != "cuda":
        if name == "fp16":
            raise GantoolError("fp16 training needs a CUDA device; use --precision fp32 or bf16")
        return torch.bfloat16
    if name == "bf16" or (name == "auto" and native_bf16(device)):
        return torch.bfloat16
    return torch.float16


def native_bf16(device: torch.device) -> bool:
    """Whether the GPU runs bf16 natively (compute capability 8.0, Ampere, and later).

    ``torch.cuda.is_bf16_supported()`` also says yes where bf16 is emulated, far slower
    than fp16 with a gradient scaler.
    """
    return torch.cuda.get_device_capability(device) >= (8, 0)


@contextlib.contextmanager
def true_fp32() -> Iterator[None]:
    """float32 matmuls and convolutions without TF32 (its 10-bit mantissa) inside the block."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def set_training_flags(device: torch.device, deterministic: bool) -> None:
    """Backend flags for training: cuDNN autotuning and TF32 on CUDA for speed, or, when
    ``deterministic``, the same bits on every run (and no autotuning, no TF32)."""
    if deterministic:
        # cuBLAS needs this to be deterministic; it is read when CUDA first creates a handle.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        # Warn, not fail, for operations without a deterministic CUDA kernel (reflection
        # padding's backward, in CycleGAN's generators): the warning names them.
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True


P = ParamSpec("P")
R = TypeVar("R")


def restores_backend_flags(fn: Callable[P, R]) -> Callable[P, R]:
    """Put torch's global backend flags back as they were when ``fn`` returns or raises:
    a library call must not leave the caller's process in autotuning or TF32 mode."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        saved = (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32,
                 torch.backends.cudnn.allow_tf32)
        deterministic = (torch.are_deterministic_algorithms_enabled(),
                         torch.is_deterministic_algorithms_warn_only_enabled())
        try:
            return fn(*args, **kwargs)
        finally:
            (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32,
             torch.backends.cudnn.allow_tf32) = saved
            torch.use_deterministic_algorithms(deterministic[0], warn_only=deterministic[1])

    return wrapper
