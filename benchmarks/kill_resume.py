"""SIGKILL a short training run at 20 moments and check each resumes bit-identically.

    python benchmarks/kill_resume.py            # about 5 minutes on 2 CPU cores
    python benchmarks/kill_resume.py --model cut    # CUT (and fastcut): its head and EMA too

Each moment is hit exactly: a child process trains with the library's own functions
wrapped so that, at the chosen call, the process sends itself SIGKILL (before the first
checkpoint; inside a checkpoint write: after the weights, before the folder rename, before
``latest``; inside pruning: before the rename aside, half-way through deleting; between
checkpoints; while a loss row or a sample grid is written). Then ``gantool train --resume``
runs as a real process, and its final weights (and ``losses.csv``) are compared with an
uninterrupted run's. Prints one line per moment and a total; exit status 1 unless all pass.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STEPS = 16
#: The loop's flags, the same for every model: checkpoints, pruning, logs and samples often.
LOOP = ["--size", "32", "--batch-size", "4", "--ngf", "8", "--ndf", "8", "--steps", str(STEPS),
        "--checkpoint-every", "4", "--keep-last", "1", "--history-every", "0", "--log-every", "3",
        "--sample-every", "4", "--workers", "0"]
_CUT = ["--data", "digits", "--domain-a", "3", "--domain-b", "8", "--blocks", "2",
        "--num-patches", "16", "--head-units", "16", "--ema", "0.9"]
#: A model's own flags (small networks, so that the 21 runs take minutes).
MODEL_FLAGS: dict[str, list[str]] = {"dcgan": ["--data", "demo"], "cut": _CUT, "fastcut": _CUT}


def train_args(model: str) -> list[str]:
    return ["train", model, *MODEL_FLAGS[model], *LOOP]

#: (kind, n): kill at the n-th time that kind of thing happens.
MOMENTS: list[tuple[str, int]] = [
    ("step", 1), ("step", 2), ("step", 3),          # before the first checkpoint
    ("state-write", 1),                             # weights written, state.pt not yet
    ("checkpoint-rename", 1), ("checkpoint-rename", 2),  # complete, not yet renamed
    ("latest", 1), ("latest", 3),                   # renamed, 'latest' not yet updated
    ("prune-aside", 1), ("prune-aside", 3),         # before a pruned folder is renamed aside
    ("prune-delete", 1), ("prune-delete", 2),       # half-way through deleting it
    ("step", 5), ("step", 6), ("step", 7), ("step", 9),  # between checkpoints
    ("step", 11), ("step", 13), ("step", 15),
    ("loss-row", 2),                                # while a losses.csv row is appended
]


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def child(model: str, kind: str, n: int, out: str) -> None:
    """Train the run ``out``, killing this process at the ``n``-th ``kind`` event."""
    import torch
    from translator.cli import main

    import translator.training as training
    import translator.training.outputs as outputs

    counts: dict[str, int] = {}

    def hit(what: str) -> bool:
        counts[what] = counts.get(what, 0) + 1
        return what == kind and counts[what] == n

    real_replace, real_rmtree, real_save = os.replace, shutil.rmtree, torch.save

    def replace(src, dst, *a, **k):
        src, dst = Path(src), Path(dst)
        if src.name.startswith(".step-") and src.name.endswith(".tmp") and hit("checkpoint-rename"):
            _die()
        if dst.name.endswith(".deleting") and hit("prune-aside"):
            _die()
        if dst.name == "latest" and hit("latest"):
            _die()
        return real_replace(src, dst, *a, **k)

    def rmtree(path, *a, **k):
        path = Path(path)
        if path.name.endswith(".deleting") and hit("prune-delete"):
            next(p for p in path.iterdir() if p.is_file()).unlink()
            _die()
        return real_rmtree(path, *a, **k)

    def save(obj, f, *a, **k):
        if Path(str(f)).name == "state.pt" and hit("state-write"):
            _die()
        return real_save(obj, f, *a, **k)

    real_append = outputs.LossLog.append

    def append(self, step, losses):
        if hit("loss-row"):
            with open(self.path, "a") as fh:
                fh.write(f"{step},")  # a row cut short
            _die()
        return real_append(self, step, losses)

    real_train = training.train

    def train(*args, **kwargs):
        def on_step(done, *_):
            if kind == "step" and done == n:
                _die()
        return real_train(*args, **{**kwargs, "on_step": on_step})

    # The child dies inside these calls, so they are swapped for the versions above.
    os.replace, torch.save = replace, save
    shutil.rmtree = rmtree  # type: ignore[assignment]  # a plain function lacks rmtree's extra attribute
    outputs.LossLog.append = append  # type: ignore[method-assign]  # patched on the class for every log
    training.train = train
    import translator.cli.train as cli_train  # noqa: F401 - imports train lazily from training
    main([*train_args(model), "--out", out])


def gantool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "translator.cli", *args], capture_output=True,
                          text=True, cwd=REPO)


def final(run: Path) -> tuple[dict, str]:
    from safetensors.torch import load_file

    from translator.training.checkpoint import find_checkpoint

    folder = find_checkpoint(run / "checkpoints")
    # Every tensor file of the checkpoint: the weights, and the EMA copy where there is one.
    tensors = {f"{path.name}:{key}": value for path in sorted(folder.glob("*.safetensors"))
               for key, value in load_file(str(path)).items()}
    return tensors, (run / "logs" / "losses.csv").read_text()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=sorted(MODEL_FLAGS), default="dcgan")
    parser.add_argument("--child", nargs=3, metavar=("KIND", "N", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.model, args.child[0], int(args.child[1]), args.child[2])
        return 0
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        straight = Path(tmp) / "straight"
        done = gantool(*train_args(args.model), "--out", str(straight))
        assert done.returncode == 0, done.stderr
        weights, log = final(straight)
        passed = logs_equal = 0
        for kind, n in MOMENTS:
            run = Path(tmp) / f"{kind}-{n}"
            killed = subprocess.run([sys.executable, __file__, "--model", args.model,
                                     "--child", kind, str(n), str(run)],
                                    capture_output=True, text=True, cwd=REPO)
            left = sorted(p.name for p in (run / "checkpoints").glob("*"))
            resumed = gantool("train", "--resume", str(run))
            # Killed while pruning after the last checkpoint: the run had finished its work.
            finished = "already finished" in resumed.stderr
            ok = killed.returncode == -signal.SIGKILL and (resumed.returncode == 0 or finished)
            same = same_log = False
            if ok:
                got, got_log = final(run)
                same = got.keys() == weights.keys() and all(torch.equal(got[k], weights[k]) for k in got)
                same_log = got_log == log
            passed += same
            logs_equal += same_log
            status = "identical" if same else ("DIFFERENT" if ok else "FAILED")
            why = "" if ok else f" (kill rc {killed.returncode}, resume: {resumed.stderr.strip()[-300:]})"
            status += " (had finished all steps)" if finished else ""
            print(f"{kind:>17} {n:>2}: left {left}; resumed weights {status}, "
                  f"losses.csv {'identical' if same_log else 'differs'}{why}", flush=True)
    print(f"\n{passed} of {len(MOMENTS)} killed runs resumed to bit-identical weights; "
          f"{logs_equal} of {len(MOMENTS)} with an identical losses.csv")
    return 0 if passed == len(MOMENTS) else 1


if __name__ == "__main__":
    raise SystemExit(main())
