"""The shared loop: run folder contents, exact resume after kill -9, and clear errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from translator.training.checkpoint import find_checkpoint, list_checkpoints

SMALL = ["--size", "32", "--batch-size", "8", "--ngf", "8", "--ndf", "8", "--log-every", "5"]


def gantool(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "translator.cli", *map(str, args)], capture_output=True, text=True, **kwargs
    )


def final_weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(find_checkpoint(run / "checkpoints") / "weights.safetensors"))


def test_train_writes_the_run_folder(run_cli, tmp_path):
    run = tmp_path / "run"
    result = run_cli(
        "train",
        "wgan-gp",
        "--data",
        "demo",
        "--steps",
        "12",
        *SMALL,
        "--out",
        run,
        "--sample-every",
        "6",
        "--checkpoint-every",
        "4",
        "--keep-last",
        "2",
        "--history-every",
        "4",
    )
    assert result.exit_code == 0, result.output
    config = json.loads((run / "config.json").read_text())
    assert config["model"] == "wgan-gp" and config["plugin"] == "dcgan"
    assert config["model_config"]["gp_weight"] == 10.0 and config["train"]["size"] == 32
    assert config["data"]["images"]["images"] == 512 and config["gantool_version"]
    # history_every=4 keeps 4 and 8 although keep_last=2 would drop them
    assert sorted(list_checkpoints(run / "checkpoints")) == [4, 8, 12]
    assert (run / "checkpoints" / "latest").read_text().strip() == "step-0000012"
    state = torch.load(run / "checkpoints" / "step-0000012" / "state.pt", weights_only=True)
    assert state["step"] == 12 and set(state["optimizers"]) == {"G", "D"}
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step-0000006.png", "step-0000012.png"]
    lines = (run / "logs" / "losses.csv").read_text().splitlines()
    assert lines[0].startswith("step,") and "gp" in lines[0] and len(lines) == 1 + 12 // 5 + 1
    assert (run / "logs" / "losses.png").stat().st_size > 1000
    assert not list(run.rglob("*.tmp*"))


@pytest.mark.parametrize("model", ["wgan-gp", "dcgan"])
def test_resume_after_kill_matches_an_uninterrupted_run(tmp_path, model):
    steps = 30
    common = [
        "train",
        model,
        "--data",
        "demo",
        "--steps",
        steps,
        *SMALL,
        "--workers",
        "0",
        # Bit-exact only where every run computes alike: the CPU (a GPU needs --deterministic).
        "--device",
        "cpu",
        "--checkpoint-every",
        "5",
        "--sample-every",
        "1000",
    ]
    straight = tmp_path / "straight"
    assert gantool(*common, "--out", straight).returncode == 0

    interrupted = tmp_path / "interrupted"
    proc = subprocess.Popen(
        [sys.executable, "-m", "translator.cli", *map(str, common), "--out", str(interrupted)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while time.time() < deadline and not (interrupted / "checkpoints" / "step-0000010").exists():
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = max(list_checkpoints(interrupted / "checkpoints"))
    assert 10 <= done < steps, "the run should have been killed part-way"

    result = gantool("train", "--resume", interrupted)
    assert result.returncode == 0, result.stderr
    a, b = final_weights(straight), final_weights(interrupted)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    log = (interrupted / "logs" / "losses.csv").read_text().splitlines()
    assert [int(r.split(",")[0]) for r in log[1:]] == list(range(5, steps + 1, 5))


def _small_run(run_cli, tmp_path: Path, model: str = "dcgan") -> Path:
    run = tmp_path / model
    result = run_cli("train", model, "--data", "demo", "--steps", "2", *SMALL, "--out", run)
    assert result.exit_code == 0, result.output
    return run


def test_resume_with_another_model_is_refused(run_cli, tmp_path):
    run = _small_run(run_cli, tmp_path)
    result = run_cli("train", "wgan", "--resume", run)
    assert result.exit_code == 1
    assert f"{run} is a run of model 'dcgan', not 'wgan'" in result.output


def test_resume_of_a_finished_run_asks_for_more_steps(run_cli, tmp_path):
    run = _small_run(run_cli, tmp_path)
    result = run_cli("train", "--resume", run)
    assert result.exit_code == 1 and "pass --steps above 2" in result.output
    assert run_cli("train", "--resume", run, "--steps", "3").exit_code == 0
    assert max(list_checkpoints(run / "checkpoints")) == 3


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error where no GPU is")
def test_resume_takes_another_device_when_asked(run_cli, tmp_path):
    run = _small_run(run_cli, tmp_path)  # recorded device: auto
    result = run_cli("train", "--resume", run, "--steps", "3", "--device", "cuda")
    assert result.exit_code == 1 and "no CUDA device is available" in result.output
    result = run_cli("train", "--resume", run, "--steps", "3", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert max(list_checkpoints(run / "checkpoints")) == 3


def test_corrupt_checkpoint_is_one_clear_line(run_cli, tmp_path):
    run = _small_run(run_cli, tmp_path)
    ckpt = find_checkpoint(run / "checkpoints")
    (ckpt / "state.pt").write_bytes(b"garbage" * 10)
    result = run_cli("train", "--resume", run, "--steps", "4")
    assert result.exit_code == 1 and "is corrupt" in result.output
    (ckpt / "weights.safetensors").write_bytes(b"\x00" * 40)
    result = run_cli("sample", run, "-o", tmp_path / "g.png")
    assert result.exit_code == 1 and "is corrupt" in result.output


def test_sample_command_writes_a_grid(run_cli, tmp_path):
    from PIL import Image

    run = _small_run(run_cli, tmp_path)
    result = run_cli("sample", run, "-n", "16", "-o", tmp_path / "grid.png")
    assert result.exit_code == 0, result.output
    # 16 images of 32 px, enlarged to 64 px cells, 4 per row with 2 px padding.
    assert Image.open(tmp_path / "grid.png").size == (4 * 66 + 2, 4 * 66 + 2)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--data", "/no/such/folder"], "no such folder or built-in set"),
        (["--data", "demo", "--steps", "0"], "--steps must be at least 1"),
        (["--data", "demo", "--device", "cuda:7"], "cuda"),
        (["--data", "demo", "--size", "48"], "not 48"),
    ],
)
def test_bad_training_input_is_one_line(run_cli, tmp_path, args, message):
    result = run_cli("train", "dcgan", *args, "--out", tmp_path / "r")
    assert result.exit_code == 1, result.output
    assert message in result.output and "Traceback" not in result.output


def test_a_folder_without_images_is_clear(run_cli, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no images here")
    result = run_cli("train", "dcgan", "--data", tmp_path / "empty", "--out", tmp_path / "r")
    assert result.exit_code == 1 and "no readable images" in result.output


def test_missing_data_and_resume_of_nothing_are_clear(run_cli, tmp_path):
    result = run_cli("train", "dcgan", "--steps", "1")
    assert result.exit_code != 0 and "Missing option '--data'" in result.output
    result = run_cli("train", "--resume", tmp_path / "nothing")
    assert result.exit_code == 1 and "not a run folder" in result.output


def test_each_logged_loss_is_the_mean_over_the_steps_that_returned_it(tmp_path):
    """WGAN trains its generator on every fifth step only: its logged loss is that step's."""
    import csv

    from translator.config import TrainConfig
    from translator.registry import get_registry
    from translator.training import train

    spec = get_registry().model("wgan")
    returned: dict[str, list[list[float]]] = {}

    def on_step(done: int, model, losses: dict) -> None:
        interval = (done - 1) // 5
        for name, value in losses.items():
            rows = returned.setdefault(name, [])
            while len(rows) <= interval:
                rows.append([])
            rows[interval].append(float(value))

    cfg = TrainConfig(model="wgan", data="demo", size=32, batch_size=4, steps=12, log_every=5,
                      device="cpu", workers=0, out=str(tmp_path / "run"), sample_every=1000)
    train(cfg, spec.config(ngf=8, ndf=8), progress=False, on_step=on_step)
    with open(tmp_path / "run" / "logs" / "losses.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["step"]) for r in rows] == [5, 10, 12]
    # Generator steps are 5 and 10 (1-based): one in each of the first two intervals, none
    # in the last, whose row leaves the generator's loss empty rather than zero.
    assert [len(v) for v in returned["G"]] == [1, 1]
    for row, values in zip(rows, returned["G"], strict=False):
        assert float(row["G"]) == pytest.approx(values[0], rel=1e-4)
    assert rows[2]["G"] == ""
    for row, values in zip(rows, returned["D"], strict=True):
        assert float(row["D"]) == pytest.approx(sum(values) / len(values), rel=1e-4)


@pytest.fixture
def quick_compile(monkeypatch):
    """``torch.compile`` with the aot_eager backend: the same graph capture and AOT autograd
    (hence the same double-backward limit) as inductor, without generating C++. Yields the
    list of graphs compiled."""
    from torch._dynamo.backends.registry import lookup_backend

    graphs = []
    real, aot_eager = torch.compile, lookup_backend("aot_eager")

    def counting(gm, example_inputs):
        graphs.append(gm)
        return aot_eager(gm, example_inputs)

    monkeypatch.setattr(torch, "compile", lambda *a, **kw: real(*a, **{**kw, "backend": counting}))
    yield graphs
    torch._dynamo.reset()


@pytest.mark.parametrize("graphs, kind, mode", [
    (True, "cuda", "reduce-overhead"), (True, "cpu", None), (False, "cuda", None),
])
def test_cuda_graphs_are_asked_for_on_cuda_only(graphs, kind, mode):
    from translator.config import TrainConfig
    from translator.training.compile import compile_mode

    config = TrainConfig(compile=True, cuda_graphs=graphs)
    assert compile_mode(config, torch.device(kind)) == mode


def test_a_compiled_wgan_gp_run_resumes_exports_and_samples(run_cli, quick_compile, tmp_path):
    from translator.registry import get_registry

    run = tmp_path / "run"
    result = run_cli("train", "wgan-gp", "--data", "demo", "--steps", "2", *SMALL, "--compile",
                     "--n-critic", "2", "--out", run)
    assert result.exit_code == 0, result.output
    spec = get_registry().model("wgan-gp")
    eager = spec.build(spec.config(size=32, ngf=8, ndf=8))
    assert set(final_weights(run)) == set(eager.nets.state_dict())
    assert "gp" in (run / "logs" / "losses.csv").read_text().splitlines()[0]
    assert quick_compile and "torch.compile failed" not in result.output
    result = run_cli("train", "--resume", run, "--steps", "3")
    assert result.exit_code == 0, result.output
    assert run_cli("sample", run, "-n", "4", "-o", tmp_path / "g.png").exit_code == 0
    result = run_cli("export", "onnx", run, "-o", tmp_path / "g.onnx")
    assert result.exit_code == 0, result.output


def test_a_compiled_cyclegan_run_translates_and_exports(run_cli, quick_compile, tmp_path):
    from PIL import Image

    run = tmp_path / "run"
    result = run_cli("train", "cyclegan-mobile", "--data", "demo", "--steps", "2", "--size", "32",
                     "--ngf", "8", "--ndf", "8", "--d-layers", "2", "--compile", "--out", run)
    assert result.exit_code == 0, result.output
    assert quick_compile and "torch.compile failed" not in result.output
    Image.new("RGB", (40, 32), (200, 30, 90)).save(tmp_path / "in.png")
    result = run_cli("translate", run, tmp_path / "in.png", "-o", tmp_path / "out.png",
                     "--no-progress")
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "out.png").size == (40, 32)
    result = run_cli("export", "onnx", run, "--direction", "a2b", "-o", tmp_path / "a2b.onnx")
    assert result.exit_code == 0, result.output


def test_a_network_that_fails_to_compile_at_its_first_call_runs_eager(run_cli, monkeypatch, tmp_path):
    def no_compiler(gm, example_inputs):
        raise RuntimeError("no working C compiler found")

    real = torch.compile
    monkeypatch.setattr(torch, "compile", lambda *a, **kw: real(*a, **{**kw, "backend": no_compiler}))
    try:
        result = run_cli("train", "dcgan", "--data", "demo", "--steps", "2", *SMALL, "--compile",
                         "--out", tmp_path / "run")
    finally:
        torch._dynamo.reset()
    assert result.exit_code == 0, result.output
    for net in ("G", "D"):
        assert result.output.count(f"torch.compile failed for {net}; running it eager") == 1
    assert "no working C compiler found" in result.output


def test_weights_that_do_not_fit_are_one_short_line(tmp_path):
    from torch import nn

    from translator.errors import GantoolError
    from translator.training.checkpoint import load_into

    net = nn.ModuleDict({"G": nn.Sequential(*[nn.Linear(4, 4) for _ in range(50)])})
    renamed = {f"G._orig_mod.x{k}": v for k, v in net.state_dict().items()}
    with pytest.raises(GantoolError) as err:
        load_into(net, renamed, tmp_path)
    message = str(err.value)
    assert "\n" not in message and len(message) < 400, message
    assert "100 missing" in message and "'G.0.weight'" in message
    wrong = dict(net.state_dict(), **{"G.3.weight": torch.zeros(5, 4)})
    with pytest.raises(GantoolError, match=r"G\.3\.weight.*\[5, 4\].*\[4, 4\]"):
        load_into(net, wrong, tmp_path)


@pytest.mark.slow
def test_a_run_compiled_by_inductor_resumes_and_exports(run_cli, tmp_path):
    """The real backend (C++ code generation, minutes on two cores): no network falls back
    to eager, the penalty's double backward included, and the run is usable afterwards."""
    run = tmp_path / "run"
    try:
        result = run_cli("train", "wgan-gp", "--data", "demo", "--steps", "2", *SMALL, "--compile",
                         "--n-critic", "2", "--workers", "0", "--out", run)
        assert result.exit_code == 0, result.output
        assert "torch.compile failed" not in result.output
        result = run_cli("train", "--resume", run, "--steps", "3")
        assert result.exit_code == 0 and "torch.compile failed" not in result.output, result.output
    finally:
        torch._dynamo.reset()
    result = run_cli("export", "onnx", run, "-o", tmp_path / "g.onnx")
    assert result.exit_code == 0, result.output
