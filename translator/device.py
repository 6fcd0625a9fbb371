"""Devices, precision and the torchrun environment."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import torch

from .errors import GantoolError


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


def init_process_group(dist_info: Distributed, device: torch.device) -> None:
    import torch.distributed as dist

    if dist_info.enabled and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)


def choose_device(name: str, local_rank: int = 0, announce: bool = True) -> torch.device:
    """``auto`` takes CUDA when present (saying so when it is not), else the named device."""
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
    if name == "bf16" or (name == "auto" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    return torch.float16
