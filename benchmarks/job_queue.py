"""Run a list of benchmark commands a few at a time, within a time limit: a grid of seeds
and variants on a machine held for minutes (a lent GPU machine, say).

    python benchmarks/job_queue.py jobs.txt --parallel 12 --stop-after 420 --deadline 520 --out OUT

``jobs.txt`` holds one ``NAME COMMAND...`` per line (``#`` starts a comment). Jobs start in
the file's order; none starts after ``--stop-after`` seconds and any still running at
``--deadline`` is stopped, so what finished is there when the machine goes back. Each job's
output goes to ``OUT/logs/NAME.log``; ``OUT/results.txt`` gets one line per job that ended:
its name, exit status, seconds and the last line it printed (the figures, for
digits_translate.py).
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Job:
    name: str
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None
    began: float = 0.0


def read_jobs(path: Path) -> list[Job]:
    jobs = []
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, *argv = shlex.split(line)
            jobs.append(Job(name, argv))
    return jobs


def start(job: Job, logs: Path) -> None:
    # One thread each: many jobs share the machine's cores.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    with open(logs / f"{job.name}.log", "wb") as log:
        job.process = subprocess.Popen(job.argv, stdout=log, stderr=subprocess.STDOUT, env=env)
    job.began = time.monotonic()


def finish(job: Job, logs: Path, results: Path) -> None:
    assert job.process is not None
    lines = (logs / f"{job.name}.log").read_text(errors="replace").strip().splitlines()
    seconds = time.monotonic() - job.began
    with open(results, "a") as fh:
        fh.write(f"{job.name} rc={job.process.returncode} s={seconds:.0f} "
                 f"{lines[-1] if lines else ''}\n")


def run(jobs: list[Job], args: argparse.Namespace) -> None:
    logs = args.out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    results = args.out / "results.txt"
    began, waiting = time.monotonic(), list(jobs)
    running: list[Job] = []
    while waiting or running:
        elapsed = time.monotonic() - began
        while waiting and len(running) < args.parallel and elapsed < args.stop_after:
            job = waiting.pop(0)
            start(job, logs)
            running.append(job)
        for job in [j for j in running if j.process is not None and j.process.poll() is not None]:
            finish(job, logs, results)
            running.remove(job)
        if elapsed >= args.deadline or (elapsed >= args.stop_after and not running):
            break
        time.sleep(1)
    for job in running:
        assert job.process is not None
        job.process.kill()
        job.process.wait()
        finish(job, logs, results)
    print(f"{len(jobs) - len(waiting)} of {len(jobs)} jobs started; "
          f"{len(waiting)} not started, {len(running)} stopped at the deadline")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("jobs", type=Path)
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--stop-after", type=float, default=float("inf"), metavar="SECONDS")
    parser.add_argument("--deadline", type=float, default=float("inf"), metavar="SECONDS")
    parser.add_argument("--out", type=Path, default=Path("queue-out"))
    args = parser.parse_args()
    if not args.jobs.is_file():
        parser.error(f"{args.jobs} is not a file")
    run(read_jobs(args.jobs), args)


if __name__ == "__main__":
    main()
