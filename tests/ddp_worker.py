"""One process of a ``torchrun`` job for ``tests/test_ddp.py``: runs a list of trainings.

Usage: ``python -m torch.distributed.run --standalone --nproc-per-node 2 tests/ddp_worker.py PLAN``

``PLAN`` is a JSON file holding ``{"log_dir": DIR, "jobs": [JOB, ...]}``; each job names a
``train`` call: ``name``, ``model``, ``out`` (``{rank}`` in it is replaced by the rank),
``steps``, ``stop_after``, ``resume`` (a run folder), ``model_config`` (fields of the model's
config), ``train`` (extra :class:`TrainConfig` fields). After every step, each rank appends a
JSON line to ``LOG_DIR/NAME.rank<R>.jsonl``: the step and a fingerprint of every network's
parameters (parameters only: BatchNorm statistics are per rank by design). Jobs are
separated by a barrier, so that a resume reads a checkpoint rank 0 has finished writing.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist


def fingerprint(named: dict[str, torch.Tensor]) -> dict[str, list]:
    """``{"NET.param": tensor}`` -> {NET: [sum of its tensors, sha256 of names and bytes]}."""
    digests: dict[str, hashlib._Hash] = {}
    sums: dict[str, float] = {}
    for key in sorted(named):
        net, pname = key.split(".", 1)
        data = named[key].detach().float().cpu().contiguous()
        digest = digests.setdefault(net, hashlib.sha256())
        digest.update(pname.encode())
        digest.update(data.numpy().tobytes())
        sums[net] = sums.get(net, 0.0) + float(data.double().sum())
    return {net: [sums[net], digests[net].hexdigest()] for net in sorted(digests)}


def run_job(job: dict, log_dir: Path, rank: int) -> None:
    from translator.config import TrainConfig
    from translator.registry import get_registry
    from translator.training import train

    log = log_dir / f"{job['name']}.rank{rank}.jsonl"

    def on_step(done: int, model, losses: dict) -> None:
        record = {
            "step": done,
            "nets": fingerprint(dict(model.nets.named_parameters())),
            "losses": {k: float(v) for k, v in losses.items()},
        }
        with open(log, "a") as fh:
            fh.write(json.dumps(record) + "\n")

    out = job["out"].replace("{rank}", str(rank))
    if job.get("resume"):
        cfg = TrainConfig(steps=job.get("steps"))
        result = train(cfg, resume=Path(job["resume"]), progress=False,
                       stop_after=job.get("stop_after"), on_step=on_step)
    else:
        spec = get_registry().model(job["model"])
        model_config = spec.config(**job.get("model_config", {}))
        cfg = TrainConfig(model=job["model"], data="demo", device="cpu", workers=0, out=out,
                          steps=job["steps"], **job.get("train", {}))
        result = train(cfg, model_config, progress=False, stop_after=job.get("stop_after"),
                       on_step=on_step)
    with open(log_dir / f"{job['name']}.rank{rank}.result.json", "w") as fh:
        json.dump({"run_dir": str(result.run_dir), "steps": result.steps}, fh)


def main() -> None:
    plan = json.loads(Path(sys.argv[1]).read_text())
    log_dir = Path(plan["log_dir"])
    try:
        for job in plan["jobs"]:
            run_job(job, log_dir, int(os.environ.get("RANK", "0")))
            if dist.is_initialized():
                dist.barrier()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    main()
