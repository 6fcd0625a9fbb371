"""A run folder is trained by one process at a time: ``train.lock`` names its pid, a
second start or a ``--resume`` of a running run is one Error line, a lock whose process
is gone is taken over."""

from __future__ import annotations

import csv
import subprocess
import sys
import time

import pytest

from translator.training.runs import LOCK

SMALL = ["--data", "demo", "--size", "32", "--batch-size", "2", "--ngf", "8", "--ndf", "8",
         "--workers", "0", "--log-every", "1", "--sample-every", "1000"]


def _one_error_line(output: str) -> bool:
    return "Traceback" not in output and sum(ln.startswith("Error: ") for ln in output.splitlines()) == 1


@pytest.fixture
def holder():
    """A live process that is not training: its pid in a lock file holds the lock."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    proc.kill()
    proc.wait()


def test_a_held_lock_refuses_a_start_and_a_resume(run_cli, tmp_path, holder):
    run = tmp_path / "run"
    result = run_cli("train", "dcgan", *SMALL, "--steps", "2", "--out", run)
    assert result.exit_code == 0, result.output
    assert not (run / LOCK).exists()  # released at the end
    (run / LOCK).write_text(f"{holder.pid}\n")
    losses = (run / "logs" / "losses.csv").read_text()
    for args in (["train", "--resume", run, "--steps", "4"],
                 ["train", "dcgan", *SMALL, "--steps", "2", "--out", run]):
        result = run_cli(*args)
        assert result.exit_code == 1 and _one_error_line(result.output), result.output
        assert f"being trained by process {holder.pid}" in result.output
    assert (run / "logs" / "losses.csv").read_text() == losses
    assert (run / LOCK).read_text().strip() == str(holder.pid)  # the owner's lock is kept


def test_a_stale_lock_is_taken_over(run_cli, tmp_path, holder):
    run = tmp_path / "run"
    holder.kill()
    holder.wait()
    for text in (f"{holder.pid}\n", "garbled"):  # a killed owner; a kill while writing it
        run.mkdir(exist_ok=True)
        (run / LOCK).write_text(text)
        steps = "2" if text != "garbled" else "4"
        args = ["train", "--resume", run, "--steps", steps] if (run / "config.json").exists() else \
            ["train", "dcgan", *SMALL, "--steps", steps, "--out", run]
        result = run_cli(*args)
        assert result.exit_code == 0, result.output
        assert not (run / LOCK).exists()


def test_a_failed_start_leaves_no_folder(run_cli, tmp_path):
    run = tmp_path / "run"
    result = run_cli("train", "dcgan", *SMALL, "--size", "48", "--steps", "2", "--out", run)
    assert result.exit_code == 1, result.output
    assert not run.exists()


def test_two_processes_on_one_out(tmp_path):
    """The second start and a --resume while the first trains (long enough to outlast
    them; it is then stopped): both refused, the log has each step once."""
    run = tmp_path / "run"
    command = [sys.executable, "-m", "translator.cli", "train", "dcgan", *SMALL, "--steps",
               "100000", "--checkpoint-every", "10", "--out", str(run)]
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (run / "config.json").exists() and time.monotonic() < deadline:
            assert first.poll() is None, first.communicate()[1]
            time.sleep(0.1)
        seconds = [subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                    text=True)
                   for args in (command, [*command[:3], "train", "--resume", str(run)])]
        for second in seconds:
            _, err = second.communicate(timeout=120)
            assert second.returncode == 1 and _one_error_line(err), err
            assert f"being trained by process {first.pid}" in err
        assert first.poll() is None
    finally:
        first.terminate()
        first.communicate(timeout=60)
    with open(run / "logs" / "losses.csv") as fh:
        steps = [int(row["step"]) for row in csv.DictReader(fh)]
    assert steps == list(range(1, len(steps) + 1))
