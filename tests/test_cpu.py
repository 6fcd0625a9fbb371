"""How training shares the CPU: usable cores, other work, and the threads/workers plan."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from translator.config import TrainConfig
from translator.cpu import Machine, cgroup_cpu_limit, plan_cpu, runnable_elsewhere, usable_cores


def test_cgroup_v2_quota_caps_the_cores(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert cgroup_cpu_limit(tmp_path) == 1.5
    assert usable_cores(tmp_path) == 1  # 1.5 cores of quota: one whole core per thread
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_limit(tmp_path) is None
    assert usable_cores(tmp_path) == len(os.sched_getaffinity(0))


def test_cgroup_v1_quota_and_none(tmp_path: Path) -> None:
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert cgroup_cpu_limit(tmp_path) is None
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("50000\n")
    assert cgroup_cpu_limit(tmp_path) == 0.5
    assert usable_cores(tmp_path) == 1  # never below one
    assert cgroup_cpu_limit(tmp_path / "missing") is None


def test_affinity_limits_the_cores(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3})
    assert usable_cores(tmp_path) == 1


def test_runnable_elsewhere_is_the_median_less_the_reader() -> None:
    reads = iter(["0.5 0.4 0.3 3/90 1", "0.5 0.4 0.3 9/90 1", "0.5 0.4 0.3 3/90 1"])
    assert runnable_elsewhere(lambda: next(reads), samples=3, pause=0) == 2
    assert runnable_elsewhere(lambda: "0.0 0.0 0.0 1/80 1", samples=2, pause=0) == 0
    assert runnable_elsewhere(lambda: "garbage", samples=2, pause=0) == 0


def test_idle_cpu_takes_every_core_for_torch() -> None:
    plan = plan_cpu(Machine(cores=2, busy=0), on_cuda=False, file_data=True)
    assert (plan.threads, plan.workers) == (2, 0)
    assert "2 cores usable; 2 torch threads, 0 loader workers (automatic" in plan.line


def test_other_work_leaves_fewer_threads() -> None:
    plan = plan_cpu(Machine(cores=2, busy=1), on_cuda=False, file_data=False)
    assert (plan.threads, plan.workers) == (1, 0)
    assert "1 busy with other work; 1 torch thread," in plan.line


@pytest.mark.parametrize("cores,busy,file_data", [(1, 0, True), (2, 1, True), (8, 0, True),
                                                   (16, 3, True), (16, 0, False), (64, 0, True)])
def test_threads_and_workers_fit_the_free_cores(cores: int, busy: int, file_data: bool) -> None:
    plan = plan_cpu(Machine(cores, busy), on_cuda=False, file_data=file_data)
    assert plan.threads is not None and plan.threads >= 1
    assert plan.threads + plan.workers <= max(1, cores - busy)
    assert plan.workers == 0 or file_data  # arrays in memory need no loader processes


def test_omp_num_threads_and_flags_win() -> None:
    machine = Machine(cores=8, busy=0, omp_threads=3)
    plan = plan_cpu(machine, on_cuda=False, file_data=True)
    assert plan.threads == 3 and "(OMP_NUM_THREADS;" in plan.line
    plan = plan_cpu(machine, on_cuda=False, file_data=True, threads=5, workers=2)
    assert (plan.threads, plan.workers) == (5, 2) and "(--threads;" in plan.line
    assert Machine.read(env={"OMP_NUM_THREADS": "4"}).omp_threads == 4
    assert Machine.read(env={"OMP_NUM_THREADS": "x"}).omp_threads is None


def test_cuda_keeps_torch_threads_and_feeds_the_gpu() -> None:
    plan = plan_cpu(Machine(cores=16, busy=0), on_cuda=True, file_data=True)
    assert (plan.threads, plan.workers) == (None, 4)
    assert plan_cpu(Machine(cores=2, busy=0), on_cuda=True, file_data=True).workers == 1
    assert plan_cpu(Machine(cores=16, busy=0), on_cuda=True, file_data=False).workers == 0


def test_torchrun_ranks_share_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))
    assert Machine.read(local_processes=4, env={}).cores <= 2


def test_training_sets_threads_and_puts_them_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from translator.registry import get_registry
    from translator.training import train

    before = torch.get_num_threads()
    seen: list[int] = []
    original = torch.set_num_threads

    def spy(n: int) -> None:
        seen.append(n)
        original(n)

    cfg = TrainConfig(model="wgan", data="demo", size=32, steps=2, batch_size=4,
                      device="cpu", threads=1, out=str(tmp_path / "run"), sample_every=1000)
    torch.set_num_threads = spy  # type: ignore[assignment]
    try:
        train(cfg, get_registry().model("wgan").config(ngf=8, ndf=8), progress=False)
    finally:
        torch.set_num_threads = original
    assert seen and seen[0] == 1  # the run trained on the thread it was given
    assert torch.get_num_threads() == before
    assert "1 torch thread, 0 loader workers (--threads;" in capsys.readouterr().err
