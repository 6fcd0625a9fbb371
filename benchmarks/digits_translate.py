"""Does CycleGAN learn? Train it on real handwritten 6s and 9s (CPU minutes), then read
its translations of held-out digits with an independent digit classifier.

    python benchmarks/digits_translate.py --steps 3000

Prints `gantool evaluate`'s figures: the share of translated 6s read as 9 and of translated
9s read as 6, the cycle and identity errors (mean absolute difference, pixels scaled to
[0, 1]), and the classifier's reading of the real inputs.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from translator.config import TrainConfig
from translator.evaluate import evaluate_run
from translator.registry import get_registry
from translator.training import train


def evaluate(run: Path, cfg: TrainConfig | None = None) -> dict:
    """``gantool evaluate``'s figures of the run's test split, by column label."""
    return evaluate_run(run, progress=False).flat()


def main() -> None:
    warnings.filterwarnings("ignore")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="cyclegan")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--blocks", type=int, default=6)
    parser.add_argument("--domains", nargs=2, default=["6", "9"])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--score", type=Path, default=None, metavar="RUN",
                        help="only score an existing run (e.g. after gantool train --resume)")
    args = parser.parse_args()
    if args.score is not None:
        for name, value in evaluate(args.score).items():
            print(f"{name:<28}{value:>8.3f}")
        return
    out = args.out or Path(tempfile.mkdtemp(prefix="gantool-digits-cyclegan-"))

    spec = get_registry().model(args.model)
    cfg = TrainConfig(model=args.model, data="digits", domain_a=args.domains[0],
                      domain_b=args.domains[1], size=32, steps=args.steps,
                      batch_size=args.batch_size, out=str(out / "run"), log_every=50,
                      sample_every=max(1, args.steps // 5), checkpoint_every=args.steps)
    began = time.perf_counter()
    train(cfg, spec.config(blocks=args.blocks), progress=True)
    seconds = time.perf_counter() - began
    scores = evaluate(out / "run", cfg)

    print(f"\n{args.model} ({args.blocks} blocks), digits {args.domains[0]}<->{args.domains[1]}, "
          f"32 px, batch {args.batch_size}, {args.steps} steps, {seconds:.0f} s, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads; run: {out / 'run'}")
    print(f"{'measure':<28}{'value':>8}")
    for name, value in scores.items():
        print(f"{name:<28}{value:>8.3f}")


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
