"""Training's automatic CPU threads and loader workers against fixed ones, on an idle machine
and beside other work: wall and CPU seconds of a whole `gantool train` process, each
variant run in turn with the other (A B A B ...) after one warm-up each, medians and the
median of the pair-by-pair ratios A/B.

    python benchmarks/cpu_threads.py --data demo --vs "--threads 2"
    python benchmarks/cpu_threads.py --data FOLDER --vs "--threads 2 --workers 1" --load

``--load`` runs a competing process throughout: a matrix-multiply loop on as many torch
threads as there are cores, the kind of load another training run puts on the machine.
Run it alone otherwise: any other job changes both columns.
"""

from __future__ import annotations

import argparse
import os
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

from translator.cpu import usable_cores

LOAD = ("import torch, sys\ntorch.set_num_threads(int(sys.argv[1]))\n"
        "a = torch.randn(512, 512)\nwhile True:\n    a = torch.tanh(a @ a)\n")


def run_once(data: str, flags: list[str], steps: int) -> tuple[float, float, str]:
    """Wall and CPU seconds of one fresh training run, and the CPU line it printed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "translator.cli", "train", "cyclegan-mobile", "--data",
               data, "--size", "64", "--steps", str(steps), "--out", f"{tmp}/run", *flags]
        start = time.perf_counter()
        # Without OMP_NUM_THREADS, which would decide A's threads instead of the defaults.
        env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
        done = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
        wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    line = next((ln for ln in done.stderr.splitlines() if ln.startswith("CPU:")), "")
    return wall, cpu, line


def compare(data: str, vs: list[str], steps: int, repeats: int) -> dict[str, list]:
    """A (the defaults) and B (``vs``) in turn; warm-ups first, not counted."""
    run_once(data, [], steps)
    run_once(data, vs, steps)
    rows: dict[str, list] = {"A": [], "B": []}
    for _ in range(repeats):
        rows["A"].append(run_once(data, [], steps))
        rows["B"].append(run_once(data, vs, steps))
    return rows


def report(rows: dict[str, list], vs: str, loaded: bool) -> None:
    a, b = rows["A"], rows["B"]
    print(f"machine: {'under load' if loaded else 'idle'}, {usable_cores()} usable cores; "
          f"A = defaults, B = {vs}")
    print(f"A chose: {sorted({r[2] for r in a})}")
    print("| variant | wall s | cpu s |\n|---|---|---|")
    for name, runs in (("A", a), ("B", b)):
        print(f"| {name} | {statistics.median(r[0] for r in runs):.1f} | "
              f"{statistics.median(r[1] for r in runs):.1f} |")
    wall = statistics.median(x[0] / y[0] for x, y in zip(a, b, strict=True))
    cpu = statistics.median(x[1] / y[1] for x, y in zip(a, b, strict=True))
    print(f"A/B wall {wall:.2f}, A/B cpu {cpu:.2f} (median of {len(a)} pairs)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="demo", help="demo, or a folder of trainA/ trainB/")
    parser.add_argument("--vs", default="--threads 2", help="B's flags, against the defaults")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--load", action="store_true", help="run a competing process")
    args = parser.parse_args()
    load = None
    if args.load:
        load = subprocess.Popen([sys.executable, "-c", LOAD, str(usable_cores())],
                                env={**os.environ, "OMP_NUM_THREADS": str(usable_cores())})
        time.sleep(5)  # running before the first measured process reads the machine
    try:
        rows = compare(args.data, shlex.split(args.vs), args.steps, args.repeats)
    finally:
        if load is not None:
            load.kill()
    report(rows, args.vs, loaded=load is not None)


if __name__ == "__main__":
    main()
