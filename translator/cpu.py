"""How many CPU cores training may use, and how torch threads and loader processes share them.

torch's CPU threads spin and then meet at a barrier after every operator. When another
process holds one of the cores, the thread that lost its core holds up all the others:
on a 2-core machine with other work running, 2 threads trained 3x slower than 1
(BENCHMARKS.md, "CPU threads and loader workers"). So a CPU run takes one thread per core
that nothing else is using, and its data loader processes come out of the same cores.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

#: Where Linux mounts the control groups whose CPU quota caps the process.
CGROUP_ROOT = Path("/sys/fs/cgroup")


def usable_cores(cgroup_root: Path = CGROUP_ROOT) -> int:
    """The cores this process may run on: its CPU affinity, capped by a cgroup CPU quota
    (a container started with ``--cpus 1.5`` gets 1)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    quota = cgroup_cpu_limit(cgroup_root)
    if quota is not None:
        cores = min(cores, max(1, math.floor(quota)))
    return max(1, cores)


def cgroup_cpu_limit(root: Path = CGROUP_ROOT) -> float | None:
    """The CPU quota in cores, from cgroup v2 (``cpu.max``) or v1 (``cpu.cfs_quota_us``);
    None when there is none or it cannot be read."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return None if quota_us <= 0 or period_us <= 0 else quota_us / period_us


def runnable_elsewhere(read: Callable[[], str] | None = None, samples: int = 15,
                       pause: float = 0.01) -> float:
    """How many threads other than this one are running or waiting for a core now: the
    median over ``samples`` reads of ``/proc/loadavg``'s running count, less the reader
    itself. The instant count, not the load average, so that a command that ended a
    minute ago does not count as other work. 0 where it cannot be read."""
    read = read or (lambda: Path("/proc/loadavg").read_text())
    counts = []
    for i in range(samples):
        try:
            counts.append(int(read().split()[3].split("/")[0]) - 1)
        except (OSError, ValueError, IndexError):
            return 0.0
        if i + 1 < samples:
            time.sleep(pause)
    return max(0.0, statistics.median(counts))


@dataclass(frozen=True)
class Machine:
    """What a run's CPU plan is made from."""

    cores: int  #: cores this process may use (affinity, cgroup quota, its torchrun share)
    busy: int  #: of those, how many other work keeps busy
    omp_threads: int | None = None  #: ``OMP_NUM_THREADS``, when set

    @classmethod
    def read(cls, local_processes: int = 1, env: Mapping[str, str] = os.environ) -> Machine:
        """This machine now; ``local_processes`` ranks of one torchrun job share it."""
        share = max(1, local_processes)
        usable = usable_cores()
        cores = max(1, usable // share)
        # The count covers everything the kernel sees; inside a container that can be
        # the whole host, so take this process's part of it.
        visible = max(os.cpu_count() or 1, usable)
        others = runnable_elsewhere() * usable / visible / share
        busy = min(cores - 1, round(others))
        return cls(cores, busy, _positive_int(env.get("OMP_NUM_THREADS")))


def _positive_int(text: str | None) -> int | None:
    try:
        value = int(text) if text else 0
    except ValueError:
        return None
    return value if value > 0 else None


@dataclass(frozen=True)
class CpuPlan:
    """Torch threads and loader processes for one run, and the line that says why."""

    threads: int | None  #: for ``torch.set_num_threads``; None leaves torch's choice
    workers: int
    line: str


def plan_cpu(machine: Machine, *, on_cuda: bool, file_data: bool, threads: int = -1,
             workers: int = -1) -> CpuPlan:
    """Threads and workers for a run; ``threads``/``workers`` of -1 are chosen here.

    On the CPU the torch threads do the work, so they get the cores nothing else is
    using and loader processes come out of the same cores (one per 4 when images are
    decoded from files; in-memory arrays need none). On CUDA the GPU does the work: torch
    keeps its threads and files get up to 4 loader processes, one core left to feed the GPU.
    """
    free = max(1, machine.cores - machine.busy)
    if workers < 0:
        if not file_data:
            workers = 0
        elif on_cuda:
            workers = min(4, max(1, free - 1))
        else:
            workers = min(4, free // 4)
    why = "--threads"
    if threads < 0 and machine.omp_threads is not None:
        threads, why = machine.omp_threads, "OMP_NUM_THREADS"
    elif threads < 0 and on_cuda:
        return CpuPlan(None, workers, _line(machine, None, workers, "on CUDA"))
    elif threads < 0:
        threads, why = max(1, free - workers), "automatic"
    return CpuPlan(threads, workers, _line(machine, threads, workers, why))


def _line(machine: Machine, threads: int | None, workers: int, why: str) -> str:
    busy = f", {machine.busy} busy with other work" if machine.busy else ""
    torch_part = "torch's own thread count" if threads is None else \
        f"{threads} torch thread{'s' if threads != 1 else ''}"
    return (f"CPU: {machine.cores} core{'s' if machine.cores != 1 else ''} usable{busy}; "
            f"{torch_part}, {workers} loader worker{'s' if workers != 1 else ''} ({why}; "
            "choose with --threads and --workers)")
