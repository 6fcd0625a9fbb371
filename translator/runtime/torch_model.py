"""A run's checkpoint as a runtime model: ``gantool translate`` and ``gantool sample RUN``
look before exporting.

Both classes offer what :class:`translator.runtime.session.ModelSession` offers (``info``,
``provider``, ``run``), so the one frame pipeline and the one generation path
(:mod:`translator.runtime.generate`) serve checkpoints and ONNX files alike.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import GantoolError
from ..training.runs import load_model
from .session import ModelInfo


class _TorchModel:
    """``run`` for a generator module: NCHW (or noise) numpy in, numpy out."""

    device: torch.device
    module: torch.nn.Module

    def _place(self, module: torch.nn.Module, device: str) -> None:
        self.device = torch.device(device)
        self.module = module.to(self.device).eval()
        self.provider = f"torch-{self.device.type}"
        self.provider_name = self.provider

    @torch.no_grad()
    def run(self, batch: np.ndarray) -> np.ndarray:
        out = self.module(torch.from_numpy(np.ascontiguousarray(batch)).to(self.device))
        return out.float().cpu().numpy()


class CheckpointGenerator(_TorchModel):
    """The generator of a generation run (noise -> image), in PyTorch."""

    def __init__(self, run_dir: Path, step: int | None = None, device: str = "cpu") -> None:
        model, rc, self.step = load_model(Path(run_dir), step)
        generators = model.generators()
        if rc.spec.kind != "generation" or "generator" not in generators:
            raise GantoolError(f"{run_dir} is a {rc.spec.kind} run; use gantool translate")
        gen = generators["generator"]
        self._place(gen.module, device)
        latent = gen.latent_dim or 1
        self.info = ModelInfo(path=Path(run_dir), kind="generation", model=rc.spec.name,
                              latent_dim=latent, input_shape=("batch", latent),
                              from_metadata=True)


class CheckpointModel(_TorchModel):
    """One generator of a translation run, in PyTorch on the CPU (or a given device)."""

    def __init__(self, run_dir: Path, direction: str = "a2b", step: int | None = None,
                 device: str = "cpu") -> None:
        model, rc, self.step = load_model(Path(run_dir), step)
        if rc.spec.kind != "translation":
            raise GantoolError(f"{run_dir} is a {rc.spec.kind} run; use gantool sample")
        generators = model.generators()
        if direction not in generators:
            raise GantoolError(f"direction '{direction}' not in this run; "
                               f"choose {', '.join(generators)}")
        untrained = rc.untrained(self.step)
        if direction in untrained:
            raise GantoolError(f"--direction {direction}: this run's {direction} generator was "
                               f"never trained ({untrained[direction]}); it would write noise")
        gen = generators[direction]
        self._place(gen.module, device)
        names = rc.domain_names
        src, dst = (names.get("a", "a"), names.get("b", "b"))
        if direction == "b2a":
            src, dst = dst, src
        self.info = ModelInfo(
            path=Path(run_dir), kind="translation", model=rc.spec.name, direction=direction,
            domain_from=src, domain_to=dst, input_size=rc.train.size,
            size_multiple=gen.size_multiple, from_metadata=True,
        )
