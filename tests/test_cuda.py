"""The CUDA paths, run for real: every registered model trains on a GPU in bf16, fp16 (with
its gradient scaler) and fp32, channels-last; compiled; resumed exactly; moved between GPU
and CPU; exported and applied. Marked ``cuda`` and skipped where torch sees no GPU (CI).

Run them on a GPU machine with ``pytest -m cuda``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from export_helpers import model_names
from PIL import Image

from translator.config import TrainConfig
from translator.registry import get_registry
from translator.testing import small_config
from translator.training import train
from translator.training.checkpoint import find_checkpoint, load_weights

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

SIZE = 32
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def cuda_config(name: str, out: Path, **changes: Any) -> TrainConfig:
    values: dict[str, Any] = dict(model=name, data="demo", size=SIZE, steps=3, batch_size=4,
                                  out=str(out), device="cuda", log_every=1, sample_every=1000,
                                  checkpoint_every=1000, workers=0)
    values.update(changes)
    return TrainConfig(**values)


class Watch:
    """An ``on_step`` callback: what the first generator's first convolution computes in
    during training steps (from the second step on), and the model it trains."""

    def __init__(self) -> None:
        self.conv_dtypes: set[torch.dtype] = set()
        self.in_steps: set[torch.dtype] = set()
        self.losses: list[dict[str, float]] = []
        self.first: dict[str, torch.Tensor] = {}
        self.model: Any = None

    def __call__(self, step: int, model: Any, losses: dict[str, torch.Tensor]) -> None:
        self.losses.append({k: float(v) for k, v in losses.items()})
        # Taken here, so that sample grids drawn after a step (in fp32) do not count.
        self.in_steps = set(self.conv_dtypes)
        if self.model is None:
            self.model = model
            self.first = {k: v.detach().clone() for k, v in model.nets.state_dict().items()}
            generator = next(iter(model.generators().values())).module
            conv = next(m for m in generator.modules()
                        if isinstance(m, torch.nn.modules.conv._ConvNd))
            conv.register_forward_hook(lambda m, i, out: self.conv_dtypes.add(out.dtype))


@pytest.mark.parametrize("precision", list(DTYPES))
@pytest.mark.parametrize("name", model_names())
def test_every_model_trains_on_cuda(tmp_path, name, precision):
    spec = get_registry().model(name)
    watch = Watch()
    result = train(cuda_config(name, tmp_path / "run", precision=precision),
                   small_config(spec, SIZE), progress=False, on_step=watch)
    assert result.steps == 3
    assert all(math.isfinite(v) for row in watch.losses for v in row.values()), watch.losses
    assert watch.in_steps == {DTYPES[precision]}
    params = list(watch.model.nets.parameters())
    assert {p.device.type for p in params} == {"cuda"}
    images = [p for p in params if p.dim() == 4 and p.shape[-1] > 1]
    assert images and all(p.is_contiguous(memory_format=torch.channels_last) for p in images)
    final = watch.model.nets.state_dict()
    assert any(not torch.equal(final[k], v) for k, v in watch.first.items()), "nothing learned"
    state = torch.load(find_checkpoint(result.run_dir / "checkpoints") / "state.pt",
                       weights_only=True)
    # fp16 needs a gradient scaler per optimizer, saved for resume; bf16 and fp32 none.
    assert bool(state["scalers"]) == (precision == "fp16")
    if precision == "fp16":
        assert set(state["scalers"]) == set(state["optimizers"])


def weights_after(run: Path) -> dict[str, torch.Tensor]:
    return load_weights(find_checkpoint(run / "checkpoints"))


def straight_and_resumed(tmp_path: Path, name: str, **changes: Any) -> tuple[dict, dict]:
    """Weights after 6 steps in one go, and after 3 steps, a stop and a resume to 6."""
    spec = get_registry().model(name)
    config = small_config(spec, SIZE)
    common = dict(steps=6, checkpoint_every=3, **changes)
    train(cuda_config(name, tmp_path / "straight", **common), config, progress=False)
    resumed = tmp_path / "resumed"
    train(cuda_config(name, resumed, **common), config, progress=False, stop_after=3)
    train(TrainConfig(), resume=resumed, progress=False)
    return weights_after(tmp_path / "straight"), weights_after(resumed)


@pytest.mark.parametrize("name", ["cyclegan", "wgan-gp"])
def test_a_deterministic_cuda_run_resumes_bit_for_bit(tmp_path, name):
    # wgan-gp draws its penalty's interpolation weights from the CUDA generator, so this
    # also checks that the CUDA random state is saved and restored.
    straight, resumed = straight_and_resumed(tmp_path, name, deterministic=True)
    assert straight.keys() == resumed.keys()
    differing = [k for k in straight if not torch.equal(straight[k], resumed[k])]
    assert not differing, differing


def distance(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """||a - b|| / ||a|| over all weights together."""
    diff = sum(float((a[k].double() - b[k].double()).pow(2).sum()) for k in a)
    norm = sum(float(a[k].double().pow(2).sum()) for k in a)
    return math.sqrt(diff / norm)


def test_a_default_cuda_run_resumes_as_closely_as_two_uninterrupted_runs(tmp_path):
    """bf16 autocast with cuDNN autotuning and atomics is not bit-reproducible, resumed or
    not (hence --deterministic). A resume must add nothing to that: the resumed weights lie
    as close to an uninterrupted run's as a second uninterrupted run does."""
    straight, resumed = straight_and_resumed(tmp_path, "cyclegan")
    spec = get_registry().model("cyclegan")
    train(cuda_config("cyclegan", tmp_path / "again", steps=6, checkpoint_every=3),
          small_config(spec, SIZE), progress=False)
    again = weights_after(tmp_path / "again")
    by_resume, by_chance = distance(straight, resumed), distance(straight, again)
    print(f"\ndefault CUDA run after 6 steps: resumed at 3 differs by {by_resume:.2e}, "
          f"a second run by {by_chance:.2e} (relative L2 over all weights)")
    assert by_resume <= 3 * by_chance + 1e-4


@pytest.mark.parametrize("first, then", [("cuda", "cpu"), ("cpu", "cuda")])
def test_a_run_moves_between_gpu_and_cpu(tmp_path, first, then):
    """``gantool train --resume RUN --device cpu`` continues a GPU run on the CPU (and back):
    optimizer state follows the device (fused Adam on CUDA, plain on the CPU)."""
    spec = get_registry().model("cyclegan")
    run = tmp_path / "run"
    train(cuda_config("cyclegan", run, steps=2, device=first), small_config(spec, SIZE),
          progress=False)
    watch = Watch()
    result = train(TrainConfig(steps=4, device=then), resume=run, progress=False, on_step=watch)
    assert result.steps == 4
    assert {p.device.type for p in watch.model.nets.parameters()} == {then}
    assert all(torch.isfinite(v).all() for v in weights_after(run).values())


@pytest.mark.parametrize("graphs", [False, True], ids=["compile", "cuda-graphs"])
def test_compiled_cuda_runs_train_resume_and_export(run_cli, tmp_path, capfd, graphs):
    """Inductor on CUDA (Triton kernels), optionally replayed as CUDA graphs: no network
    falls back to eager, sample grids and checkpoints work between compiled steps."""
    spec = get_registry().model("cyclegan")
    run = tmp_path / "run"
    try:
        train(cuda_config("cyclegan", run, steps=4, compile=True, cuda_graphs=graphs,
                          sample_every=2, checkpoint_every=2),
              small_config(spec, SIZE), progress=False)
        train(TrainConfig(steps=6), resume=run, progress=False)
    finally:
        torch._dynamo.reset()
    assert sorted(p.name for p in (run / "samples").iterdir())[-1] == "step-0000006.png"
    assert "torch.compile failed" not in capfd.readouterr().err
    result = run_cli("export", "onnx", run, "-o", tmp_path / "m.onnx")
    assert result.exit_code == 0, result.output


def test_a_cuda_run_exports_translates_and_applies(run_cli, tmp_path):
    spec = get_registry().model("cyclegan")
    run = tmp_path / "run"
    train(cuda_config("cyclegan", run, steps=3), small_config(spec, SIZE), progress=False)
    model = tmp_path / "m.onnx"
    result = run_cli("export", "onnx", run, "--direction", "a2b", "-o", model)
    assert result.exit_code == 0, result.output
    picture = tmp_path / "in.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)).save(picture)
    by_torch, by_onnx = tmp_path / "torch.png", tmp_path / "onnx.png"
    result = run_cli("translate", run, picture, "-o", by_torch, "--device", "cuda")
    assert result.exit_code == 0, result.output
    result = run_cli("apply", "--model", model, picture, "-o", by_onnx, "--provider", "auto")
    assert result.exit_code == 0, result.output
    a = np.asarray(Image.open(by_torch), dtype=np.float32)
    b = np.asarray(Image.open(by_onnx), dtype=np.float32)
    # The same generator through torch on the GPU and through onnxruntime: equal to rounding.
    assert a.shape == b.shape and np.abs(a - b).mean() < 1.0
