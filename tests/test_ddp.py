"""Two-process data-parallel training on the CPU (gloo), launched as users do, with torchrun.

One torchrun job trains ``cyclegan`` and ``wgan-gp`` for 4 of 6 steps (a checkpoint at 4),
plus uninterrupted 6-step twins whose ``--out`` names the rank; a second job resumes the
interrupted runs. ``tests/ddp_worker.py`` logs a fingerprint of every network's parameters
on each rank after each step.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from ddp_worker import fingerprint
from safetensors.torch import load_file

pytestmark = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()), reason="torch.distributed with gloo"
)

WORKER = Path(__file__).with_name("ddp_worker.py")
STEPS, STOP = 6, 4
TRAIN = {"size": 32, "batch_size": 2, "log_every": 1, "sample_every": 4, "checkpoint_every": 4}
MODELS = {
    "cyclegan": ("cyclegan", {"blocks": 1, "ngf": 8, "ndf": 8, "d_layers": 2}),
    # n_critic 2: the generator learns on odd steps, before and after the resume.
    "wgan-gp": ("wgan-gp", {"ngf": 8, "ndf": 8, "n_critic": 2}),
    # A pool of 2 is full after one step, so its random swaps start at once.
    "cyclegan-pool": ("cyclegan", {"blocks": 1, "ngf": 8, "ndf": 8, "d_layers": 2, "pool_size": 2}),
}


def torchrun(plan: dict, tmp: Path, name: str, timeout: int = 240) -> None:
    path = tmp / f"{name}.json"
    path.write_text(json.dumps(plan))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # two processes on two cores
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         str(WORKER), str(path)],
        capture_output=True, text=True, env=env, timeout=timeout,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]


@pytest.fixture(scope="module")
def ddp(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    logs = tmp / "logs"
    logs.mkdir()
    jobs = []
    for key, (model, model_config) in MODELS.items():
        common = {"model": model, "steps": STEPS, "model_config": model_config, "train": TRAIN}
        jobs.append({"name": key, "out": str(tmp / key), "stop_after": STOP, **common})
        jobs.append({"name": f"{key}-full", "out": str(tmp / f"{key}-full-rank{{rank}}"), **common})
    torchrun({"log_dir": str(logs), "jobs": jobs}, tmp, "first")
    before = {key: snapshot(tmp / key) for key in MODELS}
    resumes = [{"name": f"{key}-resumed", "resume": str(tmp / key), "out": ""} for key in MODELS]
    torchrun({"log_dir": str(logs), "jobs": resumes}, tmp, "resume")
    return tmp, before


def snapshot(run: Path) -> dict[str, tuple[int, int]]:
    """Relative path -> (inode, mtime in ns) of every file in a run folder."""
    return {
        str(p.relative_to(run)): (p.stat().st_ino, p.stat().st_mtime_ns)
        for p in sorted(run.rglob("*")) if p.is_file()
    }


def steps_of(logs: Path, name: str, rank: int) -> list[dict]:
    return [json.loads(line) for line in (logs / f"{name}.rank{rank}.jsonl").read_text().splitlines()]


def saved_parameters(tmp: Path, key: str, step: int) -> dict[str, list]:
    """Fingerprint of a checkpoint's parameters (its BatchNorm statistics left out)."""
    from translator.registry import get_registry

    model_name, model_config = MODELS[key]
    spec = get_registry().model(model_name)
    model = spec.build(spec.config(size=TRAIN["size"], **model_config))
    names = {name for name, _ in model.nets.named_parameters()}
    weights = load_file(str(tmp / key / "checkpoints" / f"step-{step:07d}" / "weights.safetensors"))
    assert names <= set(weights)
    return fingerprint({name: weights[name] for name in names})


def logged_steps(run: Path) -> list[int]:
    with open(run / "logs" / "losses.csv", newline="") as fh:
        return [int(row["step"]) for row in csv.DictReader(fh)]


@pytest.mark.parametrize("key", ["cyclegan", "wgan-gp"])
def test_weights_are_the_same_on_both_ranks_after_each_step(ddp, key):
    tmp, _ = ddp
    for name, steps in ((key, [1, 2, 3, 4]), (f"{key}-full", list(range(1, 7))),
                        (f"{key}-resumed", [5, 6])):
        rank0, rank1 = steps_of(tmp / "logs", name, 0), steps_of(tmp / "logs", name, 1)
        assert [r["step"] for r in rank0] == [r["step"] for r in rank1] == steps, name
        for r0, r1 in zip(rank0, rank1, strict=True):
            assert r0["nets"] == r1["nets"], f"{name}: ranks differ after step {r0['step']}"
    # The ranks trained on different images (their own shards), so equal weights are the
    # gradient averaging's doing, not a coincidence of identical batches ...
    full0, full1 = steps_of(tmp / "logs", f"{key}-full", 0), steps_of(tmp / "logs", f"{key}-full", 1)
    assert full0[0]["losses"] != full1[0]["losses"]
    # ... and the weights moved: every network changed over the run, the discriminators
    # at every step.
    for net in full0[0]["nets"]:
        assert full0[0]["nets"][net] != full0[-1]["nets"][net], f"{net} never changed"
    for d in [n for n in full0[0]["nets"] if n.startswith("D")]:
        hashes = [h["nets"][d][1] for h in full0]
        assert len(set(hashes)) == len(hashes), f"{d} did not change at every step"


@pytest.mark.parametrize("key", ["cyclegan", "wgan-gp"])
def test_only_rank_0_writes_the_run_folder(ddp, key):
    tmp, before = ddp
    # With a per-rank --out, rank 1's folder is never created.
    assert (tmp / f"{key}-full-rank0" / "config.json").is_file()
    assert not (tmp / f"{key}-full-rank1").exists()
    # The shared folder holds exactly one run's files, each written once.
    expected_first = {
        "config.json", "checkpoints/latest", "checkpoints/step-0000004/weights.safetensors",
        "checkpoints/step-0000004/state.pt", "samples/step-0000004.png", "logs/losses.csv",
        "logs/losses.png",
    }
    # TensorBoard, when installed, adds one event file per training call (rank 0's).
    writers = 1 if importlib.util.find_spec("tensorboard") else 0
    first_events = {f for f in before[key] if "tfevents" in f}
    assert len(first_events) == writers
    assert set(before[key]) - first_events == expected_first
    run = tmp / key
    after = snapshot(run)
    events = {f for f in after if "tfevents" in f}
    assert len(events) == 2 * writers and first_events <= events
    assert set(after) - events == expected_first | {
        "checkpoints/step-0000006/weights.safetensors", "checkpoints/step-0000006/state.pt",
        "samples/step-0000006.png",
    }
    # One writer: every step's loss row appears once, in order, across the resume.
    assert logged_steps(run) == list(range(1, STEPS + 1))
    assert logged_steps(tmp / f"{key}-full-rank0") == list(range(1, STEPS + 1))
    # The resume did not rewrite the first part of the run.
    for name in ("config.json", "checkpoints/step-0000004/weights.safetensors",
                 "samples/step-0000004.png"):
        assert after[name] == before[key][name], f"{name} was written again"
    state = torch.load(run / "checkpoints" / "step-0000004" / "state.pt", weights_only=True)
    assert state["step"] == STOP and len(state["rng"]) == 2  # both ranks' random streams


@pytest.mark.parametrize("key", ["cyclegan", "wgan-gp"])
def test_resume_continues_from_the_checkpoint_exactly(ddp, key):
    tmp, _ = ddp
    logs = tmp / "logs"
    results = [json.loads((logs / f"{key}-resumed.rank{r}.result.json").read_text()) for r in (0, 1)]
    assert [r["steps"] for r in results] == [STEPS, STEPS]
    # The checkpoint holds rank 0's weights after step 4, which both ranks had.
    saved = saved_parameters(tmp, key, STOP)
    assert saved == steps_of(logs, key, 0)[-1]["nets"] == steps_of(logs, key, 1)[-1]["nets"]
    # Interrupted at 4 and resumed = trained in one go, on both ranks, step by step.
    for rank in (0, 1):
        full = steps_of(logs, f"{key}-full", rank)
        pieced = steps_of(logs, key, rank) + steps_of(logs, f"{key}-resumed", rank)
        for a, b in zip(full, pieced, strict=True):
            assert a["step"] == b["step"]
            assert a["nets"] == b["nets"], f"rank {rank}: weights differ after step {a['step']}"
            assert a["losses"] == b["losses"], f"rank {rank}: losses differ at step {a['step']}"
    final = saved_parameters(tmp, key, STEPS)
    assert final == steps_of(logs, f"{key}-full", 0)[-1]["nets"]


def test_resume_with_a_full_image_pool_is_exact_on_every_rank(ddp):
    tmp, _ = ddp
    logs = tmp / "logs"
    for rank in (0, 1):
        full = steps_of(logs, "cyclegan-pool-full", rank)
        pieced = steps_of(logs, "cyclegan-pool", rank) + steps_of(logs, "cyclegan-pool-resumed", rank)
        assert [a["losses"] for a in full] == [b["losses"] for b in pieced], f"rank {rank}"
        assert [a["nets"] for a in full] == [b["nets"] for b in pieced], f"rank {rank}"


def test_adaptive_balance_trains_the_same_network_on_every_rank(tmp_path):
    """Each rank judges its own shard, so alone they would pick different networks to train
    (and average one network's gradients with the other's); they must agree."""
    logs = tmp_path / "logs"
    logs.mkdir()
    job = {"name": "adaptive", "model": "dcgan", "out": str(tmp_path / "run"), "steps": 10,
           "model_config": {"ngf": 8, "ndf": 8, "balance": "adaptive"},
           "train": {**TRAIN, "batch_size": 4}}
    torchrun({"log_dir": str(logs), "jobs": [job]}, tmp_path, "adaptive", timeout=120)
    rank0, rank1 = steps_of(logs, "adaptive", 0), steps_of(logs, "adaptive", 1)
    assert [r["step"] for r in rank0] == [r["step"] for r in rank1] == list(range(1, 11))
    for r0, r1 in zip(rank0, rank1, strict=True):
        assert set(r0["losses"]) == set(r1["losses"]), f"ranks trained different networks at {r0['step']}"
        assert r0["nets"] == r1["nets"], f"ranks differ after step {r0['step']}"
    trained = [set(r["losses"]) & {"G", "D"} for r in rank0]
    assert {"G"} in trained and {"D"} in trained, trained


def _step_with_uneven_gradients(rank: int, init: str, out: str) -> None:
    """Rank 0 has gradients for ``a`` and ``b``, rank 1 for ``a`` only, nobody for ``c``."""
    from datetime import timedelta

    from translator.training.gan import StepContext

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2,
                            timeout=timedelta(seconds=30))
    try:
        a, b, c = (torch.nn.Parameter(torch.zeros(3)) for _ in range(3))
        a.grad = torch.full((3,), float(rank + 1))
        if rank == 0:
            b.grad = torch.full((3,), 4.0)
        optimizer = torch.optim.SGD([a, b, c], lr=1.0)
        StepContext(torch.device("cpu"), world_size=2).step(optimizer)
        torch.save({"a": a.detach(), "b": b.detach(), "c": c.detach(), "c_grad": c.grad},
                   f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_ranks_with_different_gradients_reduce_the_same_buffer(tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_step_with_uneven_gradients, args=(f"file://{tmp_path / 'store'}", str(tmp_path)),
             nprocs=2)
    for rank in (0, 1):
        got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert torch.equal(got["a"], torch.full((3,), -1.5)), rank  # mean of 1 and 2
        assert torch.equal(got["b"], torch.full((3,), -2.0)), rank  # 4 on one rank of two
        assert got["c_grad"] is None and torch.equal(got["c"], torch.zeros(3)), rank
