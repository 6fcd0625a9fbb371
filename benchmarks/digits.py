"""Does training learn? Train noise-to-image GANs on real handwritten digits (CPU minutes)
and score their samples with an independent digit classifier.

    python benchmarks/digits.py --models dcgan wgan wgan-gp --steps 3000
    python benchmarks/digits.py --models dcgan --max-images 20 --set diffaug=none

Prints a table: classes covered (of 10) and the classifier's mean top probability on 500
samples, next to the same figures for real digits and for the untrained generator.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import torch
from translator.plugins.datasets.digit_reading import score_digits
from translator.plugins.datasets.digits import digit_images
from variants import overrides

from translator.config import TrainConfig
from translator.data.pipeline import to_uint8
from translator.evaluate import EvalOptions, evaluate_run
from translator.registry import get_registry
from translator.training import train
from translator.training.checkpoint import STATE, WEIGHTS, find_checkpoint, load_average


def score_run(run: Path, n: int = 500, step: int | None = None) -> dict:
    """``gantool evaluate``'s reading of ``n`` samples from fixed noise."""
    options = EvalOptions(max_images=n, seed=123)
    figures = evaluate_run(run, step, options, progress=False).figures["samples"]
    return {"mean_top_p": round(figures["mean top p"], 3), "classes": figures["classes covered"]}


def live_copy(run: Path, step: int | None) -> Path:
    """A run folder beside ``run`` with its checkpoint at ``step`` but without the
    generators' average (``--ema``): what the trained weights alone make."""
    folder = find_checkpoint(run / "checkpoints", step)
    live = run.with_name(f"{run.name}-live-{folder.name}")
    (live / "checkpoints" / folder.name).mkdir(parents=True, exist_ok=True)
    shutil.copy(run / "config.json", live / "config.json")
    for name in (WEIGHTS, STATE):
        shutil.copy(folder / name, live / "checkpoints" / folder.name / name)
    return live


def scores_at(run: Path, step: int | None = None) -> dict:
    """The score at ``step`` (default: the latest checkpoint), and the trained weights'
    own where the run averages them."""
    scores = score_run(run, step=step)
    if load_average(find_checkpoint(run / "checkpoints", step)) is not None:
        scores["live"] = score_run(live_copy(run, step), step=step)
    return scores


def run_model(name: str, out: Path, args: argparse.Namespace) -> dict:
    """Train with ``gantool train``'s defaults for the model plus the command line's settings."""
    spec = get_registry().model(name)
    train_values, model_values = overrides(list(args.set), spec.config)
    steps = args.steps
    every = args.score_every or steps
    cfg = TrainConfig(**{**spec.train_defaults, "model": name, "data": "digits", "size": 32,
                         "steps": steps, "batch_size": args.batch_size, "seed": args.seed,
                         "out": str(out / name), "log_every": 50, "sample_every": every,
                         "checkpoint_every": every, "keep_last": steps // every + 1,
                         "max_images": args.max_images, **train_values})
    began = time.perf_counter()
    train(cfg, spec.config(**model_values), progress=False)
    seconds = time.perf_counter() - began
    # Scored after training, so the seconds are training time only.
    on_the_way = {f"at {s}": scores_at(out / name, s) for s in range(every, steps, every)}
    return {"model": name, "steps": steps, "seconds": round(seconds),
            **scores_at(out / name, steps), "run": str(out / name), **on_the_way}


def main() -> None:
    warnings.filterwarnings("ignore")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["dcgan", "wgan", "wgan-gp"])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-images", type=int, default=None, help="train on N digits")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="a variant: training or model config fields, e.g. diffaug=none")
    parser.add_argument("--score-every", type=int, default=None, metavar="N",
                        help="also score the checkpoints every N steps on the way")
    parser.add_argument("--out", type=Path, default=None, help="keep runs here")
    parser.add_argument("--score", type=Path, nargs="+", default=None, metavar="RUN",
                        help="only score existing runs (e.g. after gantool train --resume)")
    args = parser.parse_args()
    if args.score:
        for run in args.score:
            print({"run": str(run), **scores_at(run)})
        return
    out = args.out or Path(tempfile.mkdtemp(prefix="gantool-digits-"))

    real, _ = digit_images()
    rows = [{"model": "real digits (reference)", **score_digits(real[::3]).as_row()}]
    torch.manual_seed(args.seed)
    untrained = get_registry().model("wgan-gp").build(
        get_registry().model("wgan-gp").config(size=32))
    with torch.no_grad():
        noise = torch.randn(500, untrained.config.latent_dim)
        rows.append({"model": "untrained generator",
                     **score_digits(to_uint8(untrained.nets["G"](noise))).as_row()})
    for name in args.models:
        rows.append(run_model(name, out, args))
        print(rows[-1], flush=True)

    print(f"\ndigits 32 px, batch {args.batch_size}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    print(f"{'model':<26}{'steps':>7}{'seconds':>9}{'classes':>9}{'mean top p':>12}")
    for r in rows:
        print(f"{r['model']:<26}{r.get('steps', ''):>7}{r.get('seconds', ''):>9}"
              f"{r['classes']:>9}{r['mean_top_p']:>12.3f}")


if __name__ == "__main__":
    main()
