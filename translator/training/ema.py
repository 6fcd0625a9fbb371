"""An exponential moving average of a model's generator weights (``--ema DECAY``).

GAN weights oscillate around a good solution from step to step; their running average
makes cleaner, steadier samples (Karras et al. 2018, Yazıcı et al. 2019). The average
covers every tensor of the networks that :meth:`GANModel.generators` returns, so any
plugin gets it without code of its own. Training still updates the live weights; samples,
``gantool evaluate``, ``translate`` and ``export`` use the average.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from .gan import GANModel


def generator_tensor_names(model: GANModel) -> list[str]:
    """Names, in ``model.nets.state_dict()``, of every parameter and buffer the model's
    exportable generators use (found by identity, so wrappers around nets work too)."""
    by_id = {id(t): name for name, t in model.nets.state_dict(keep_vars=True).items()}
    names: list[str] = []
    for gen in model.generators().values():
        for t in [*gen.module.parameters(), *gen.module.buffers()]:
            name = by_id.get(id(t))
            if name is not None and name not in names:
                names.append(name)
    return names


def decay_at(decay: float, step: int) -> float:
    """``decay``, lower over the first steps so that the average soon forgets the random
    initial weights (the warm-up of TensorFlow's ExponentialMovingAverage)."""
    return min(decay, (1 + step) / (10 + step))


class WeightAverage:
    """The averaged generator tensors, keyed as in ``model.nets.state_dict()``."""

    def __init__(self, model: GANModel, decay: float) -> None:
        self.decay = decay
        live = model.nets.state_dict(keep_vars=True)
        self._live = {name: live[name] for name in generator_tensor_names(model)}
        self.tensors = {name: t.detach().clone() for name, t in self._live.items()}
        # Floating-point tensors are averaged; counters (BatchNorm's num_batches_tracked)
        # are copied. Split once here, not on every step.
        floats = [n for n, avg in self.tensors.items() if avg.is_floating_point()]
        counters = [n for n in self.tensors if n not in floats]
        self._averaged = ([self.tensors[n] for n in floats], [self._live[n].detach() for n in floats])
        self._copied = [(self.tensors[n], self._live[n].detach()) for n in counters]

    @torch.no_grad()
    def update(self, step: int) -> None:
        """Fold in the live weights after training step ``step`` (0-based)."""
        weight = 1.0 - decay_at(self.decay, step)
        # One fused update for all tensors, not a kernel launch per tensor: small GPU steps
        # are bound by launches (BENCHMARKS.md, "Where the time went").
        torch._foreach_lerp_(*self._averaged, weight)
        for avg, live in self._copied:
            avg.copy_(live)

    def load(self, saved: dict[str, torch.Tensor]) -> None:
        """Take a checkpoint's average; names it lacks keep the live weights."""
        for name, avg in self.tensors.items():
            if name in saved:
                avg.copy_(saved[name])

    @contextlib.contextmanager
    def swapped_in(self) -> Iterator[None]:
        """The average in the model's networks for the ``with`` block, then the live
        weights back exactly as they were."""
        kept = {name: t.detach().clone() for name, t in self._live.items()}
        for name, t in self._live.items():
            t.data.copy_(self.tensors[name])
        try:
            yield
        finally:
            for name, t in self._live.items():
                t.data.copy_(kept[name])
