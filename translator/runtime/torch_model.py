"""A run's checkpoint as a runtime model: ``gantool translate`` looks before exporting.

It offers what :class:`translator.runtime.session.ModelSession` offers (``info``,
``provider``, ``run``), so the one frame pipeline serves checkpoints and ONNX files alike.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import GantoolError
from ..runs import load_model
from .session import ModelInfo


class CheckpointModel:
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
        gen = generators[direction]
        self.device = torch.device(device)
        self.module = gen.module.to(self.device).eval()
        names = rc.domain_names
        src, dst = (names.get("a", "a"), names.get("b", "b"))
        if direction == "b2a":
            src, dst = dst, src
        self.provider = f"torch-{self.device.type}"
        self.provider_name = self.provider
        self.info = ModelInfo(
            path=Path(run_dir), kind="translation", model=rc.spec.name, direction=direction,
            domain_from=src, domain_to=dst, input_size=rc.train.size,
            size_multiple=gen.size_multiple, from_metadata=True,
        )

    @torch.no_grad()
    def run(self, batch: np.ndarray) -> np.ndarray:
        out = self.module(torch.from_numpy(np.ascontiguousarray(batch)).to(self.device))
        return out.float().cpu().numpy()
