"""The training state a checkpoint holds besides the weights: :class:`TrainingState`.

Optimizers, schedulers, gradient scalers, the fixed sample inputs, the loss sums since the
last log row, the model's extra state (image pools) and the random streams, saved and
restored from the same keys so that a resumed run continues exactly.
"""

from __future__ import annotations

import inspect
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import GantoolError
from .device import Distributed
from .gan import GANModel


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


@dataclass
class TrainingState:
    """What a run's next step depends on besides the weights and the data order.

    ``scalers`` are keyed by ``id(optimizer)``. ``fixed`` is None for a run without
    sample inputs of its own (an import's step 0): a resumed run then takes them from the
    data. :meth:`state_dict` is a checkpoint's ``state.pt``; :meth:`load_state_dict` puts
    it back into this rank.
    """

    model_name: str
    model: GANModel
    optimizers: dict[str, torch.optim.Optimizer]
    schedulers: dict[str, Any]
    scalers: dict[int, Any] = field(default_factory=dict)
    fixed: dict[str, torch.Tensor] | None = None
    #: Losses summed since the last log row; checkpointed so a resumed run's next row
    #: averages the same steps as an uninterrupted run's.
    partial: LossSums = field(default_factory=LossSums)
    step: int = 0
    dist: Distributed = field(default_factory=Distributed)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    def state_dict(self) -> dict[str, Any] | None:
        """The state to save at ``step``.

        Collective under torchrun: every rank calls it, and rank 0 gets the state (the
        other ranks None), with each rank's extra state and random streams.
        """
        rng = _gather(self.dist, {k: v.cpu() for k, v in _rng_state(self.device).items()})
        extras = _gather(self.dist, self.model.extra_state())
        if not self.dist.is_main:
            return None
        state = {
            "step": self.step,
            "model": self.model_name,
            "optimizers": {n: o.state_dict() for n, o in self.optimizers.items()},
            "schedulers": {n: s.state_dict() for n, s in self.schedulers.items()},
            "scalers": {n: self.scalers[id(o)].state_dict() for n, o in self.optimizers.items()
                        if id(o) in self.scalers},
            "extra": extras[0],
            "extra_ranks": extras,
            "rng": rng,
            "log_partial": self.partial.state_dict(),
        }
        if self.fixed is not None:
            state["fixed"] = {k: v.cpu() for k, v in self.fixed.items()}
        return state

    def load_state_dict(self, state: dict[str, Any], folder: Path) -> None:
        """Put back what :meth:`state_dict` saved in checkpoint ``folder``: the step, the
        optimizers' and schedulers' state, the fixed inputs (this object's, the fresh
        ones, where it has none), the loss sums and this rank's random streams."""
        try:
            self._load_optimization(state)
            self._load_extra(state)
            fresh = self.fixed or {}
            self.fixed = _matching_fixed(state.get("fixed", fresh), fresh, folder)
            rng = state["rng"]
            step = int(state["step"])
        except (KeyError, ValueError, TypeError, IndexError, RuntimeError) as exc:
            raise GantoolError(f"checkpoint {folder} does not fit this model: {exc}") from None
        world = self.dist.world_size
        if len(rng) != world:
            print(f"note: checkpoint was written by {len(rng)} process(es); "
                  f"random streams restart for {world}", file=sys.stderr)
        _set_rng_state(rng[self.dist.rank % len(rng)], self.device)
        self.partial = LossSums()
        if "log_partial" in state:
            self.partial = LossSums.from_state(state["log_partial"], self.device)
        self.step = step

    def _load_optimization(self, state: dict[str, Any]) -> None:
        for name, opt in self.optimizers.items():
            _load_optimizer(opt, state["optimizers"][name])
        for name, sched in self.schedulers.items():
            _check_layout(sched.state_dict(), state["schedulers"][name], f"scheduler {name}")
            sched.load_state_dict(state["schedulers"][name])
        for name, opt in self.optimizers.items():
            if id(opt) in self.scalers and name in state.get("scalers", {}):
                self.scalers[id(opt)].load_state_dict(state["scalers"][name])

    def _load_extra(self, state: dict[str, Any]) -> None:
        # Per-rank state (image pools...) goes back to its own rank when the world size is
        # unchanged; otherwise every rank takes rank 0's.
        extras = state.get("extra_ranks")
        if extras is not None and len(extras) == self.dist.world_size:
            self.model.load_extra_state(extras[self.dist.rank])
        else:
            self.model.load_extra_state(state.get("extra", {}))


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
