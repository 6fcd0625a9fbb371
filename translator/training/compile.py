"""``--compile``: each network's ``forward`` through ``torch.compile``, eager where that fails."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import torch

from ..config import TrainConfig
from .gan import GANModel


def compile_mode(train_cfg: TrainConfig, device: torch.device) -> str | None:
    """``torch.compile``'s mode for ``--compile``: CUDA graphs (``reduce-overhead``) with
    ``--cuda-graphs`` on CUDA, else the default (None)."""
    return "reduce-overhead" if train_cfg.cuda_graphs and device.type == "cuda" else None


def maybe_compile(model: GANModel, mode: str | None = None) -> GANModel:
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
