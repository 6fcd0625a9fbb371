"""The embedded end-to-end job behind ``gantool demo`` and ``make demo``.

Train a light CycleGAN on the built-in day/night scenes, export the day->night generator
to ONNX (verified against PyTorch), apply it with the onnxruntime pipeline to scenes it
never saw, and draw one picture of the results. No download; a few CPU minutes.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import TrainConfig
from .errors import GantoolError
from .imaging import make_grid, save_image
from .runtime.options import RuntimeOptions
from .specs import DataRequest, ExportRequest

DEMO_MODEL = "cyclegan"
DEMO_DATA = "demo"
# A narrow ResNet CycleGAN: learns the day/night colours in a few hundred CPU steps.
DEMO_CONFIG = {"ngf": 16, "ndf": 16, "blocks": 6}


@dataclass
class DemoResult:
    out: Path
    run_dir: Path
    onnx_file: Path
    picture: Path
    inputs: Path
    outputs: Path


def _write_inputs(folder: Path, count: int) -> list[Path]:
    """Day scenes of the ``demo`` data set's test split (never trained on), enlarged to
    128 px: the runtime takes images of any size, not only the training size."""
    from .data.pipeline import resize_square
    from .registry import get_registry

    request = DataRequest("translation", domains=("day",), split="test")
    (scenes,) = get_registry().dataset(DEMO_DATA).open(None, request)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"day-{i:02d}.png"
        save_image(resize_square(scenes.load(i), 128), path)
        paths.append(path)
    return paths


def run_demo(out: Path, steps: int = 240, size: int = 64, log: Callable[[str], None] = print,
             progress: bool = True) -> DemoResult:
    """Train, export, apply; returns where everything went."""
    from .registry import get_registry
    from .runtime.apply import apply
    from .training import train

    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if not (out / "demo.png").exists():
            raise GantoolError(f"{out} exists and is not a demo folder; choose another --out")
        shutil.rmtree(out)  # a previous demo's output, safe to replace
    out.mkdir(parents=True, exist_ok=True)
    registry = get_registry()
    spec = registry.model(DEMO_MODEL)

    log(f"[1/3] Training {DEMO_MODEL} on synthetic day and night scenes ({steps} steps, "
        f"{size} px)")
    run_dir = out / "run"
    cfg = TrainConfig(model=DEMO_MODEL, data=DEMO_DATA, domain_a="day", domain_b="night",
                      size=size, steps=steps, batch_size=2, out=str(run_dir),
                      log_every=10, sample_every=max(1, steps // 4), checkpoint_every=steps)
    train(cfg, spec.config(**DEMO_CONFIG), progress=progress)

    log("[2/3] Exporting the day->night generator to ONNX and checking it against PyTorch")
    onnx_file = out / "day2night.onnx"
    registry.exporter("onnx").export(
        ExportRequest(run_dir=run_dir, output=onnx_file, direction="a2b"))

    log("[3/3] Applying it with onnxruntime to day scenes it has not seen")
    inputs = _write_inputs(out / "inputs", 8)
    outputs = out / "outputs"
    report = apply(onnx_file, [out / "inputs"], outputs, options=RuntimeOptions(progress=progress),
                   log=log)
    if report.failed:
        raise GantoolError(f"the demo could not translate {len(report.failed)} image(s)")

    from .data.images import read_image

    pairs = []
    for src in inputs:
        dst = next(outputs.rglob(src.stem + "*"))
        pairs += [read_image(src), read_image(dst)]
    picture = save_image(make_grid(np.stack(pairs), nrow=4), out / "demo.png")
    return DemoResult(out, run_dir, onnx_file, picture, out / "inputs", outputs)
