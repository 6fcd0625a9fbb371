"""Does CycleGAN learn? Train it on two digits of the real handwritten digits set with
gantool's defaults and a step budget, then read its translations of held-out digits with an
independent digit classifier.

    python benchmarks/digits_translate.py --steps 1500 --pair 6 9
    python benchmarks/digits_translate.py --steps 1500 --pair 6 9 --max-images 20
    python benchmarks/digits_translate.py --steps 1500 --set diffaug=none lambda_identity=0

Only ``--steps`` (and ``--max-images``, ``--set``) differ from what
``gantool train cyclegan --data digits --domain-a 6 --domain-b 9 --size 32`` does.
Prints `gantool evaluate`'s figures for each direction: the share of held-out translations
read as the target digit and as "not a digit", the cycle and identity errors (mean absolute
difference, pixels scaled to [0, 1]), and the classifier's reading of the real inputs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
import warnings
from pathlib import Path

import torch
from variants import overrides

from translator.config import TrainConfig, config_from_dict
from translator.evaluate import evaluate_run
from translator.registry import get_registry
from translator.training import train
from translator.training.runs import read_run_config


def evaluate(run: Path) -> dict[str, float]:
    """``gantool evaluate``'s figures of the run's held-out digits, by column label."""
    return evaluate_run(run, progress=False).flat()


def run(args: argparse.Namespace, out: Path) -> Path:
    spec = get_registry().model(args.model)
    train_values, model_values = overrides(args.set, spec.config)
    # gantool's defaults for this model, as `gantool train MODEL` resolves them.
    cfg = config_from_dict(TrainConfig, {
        **spec.train_defaults, "model": args.model, "data": "digits", "size": 32,
        "domain_a": args.pair[0], "domain_b": args.pair[1], "steps": args.steps,
        "max_images": args.max_images, "seed": args.seed, "out": str(out),
        "sample_every": max(1, args.steps // 5), **train_values})
    train(cfg, dataclasses.replace(spec.config(), **model_values), progress=args.progress)
    return out


def main() -> None:
    warnings.filterwarnings("ignore")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="cyclegan")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--pair", nargs=2, default=["6", "9"], metavar=("A", "B"))
    parser.add_argument("--max-images", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="a variant: training or model config fields, e.g. diffaug=none")
    parser.add_argument("--out", type=Path, default=None, help="the run folder")
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--score", type=Path, default=None, metavar="RUN",
                        help="only score an existing run (e.g. after gantool train --resume)")
    args = parser.parse_args()
    if args.score is not None:
        folder, seconds = args.score, None
    else:
        folder = args.out or Path(tempfile.mkdtemp(prefix="gantool-digits-cyclegan-")) / "run"
        began = time.perf_counter()
        run(args, folder)
        seconds = time.perf_counter() - began
    rc = read_run_config(folder)
    t = rc.train
    scores = evaluate(folder)
    print(f"\n{rc.spec.name}, digits {t.domain_a}<->{t.domain_b}, {t.size} px, batch {t.batch_size}, "
          f"{t.steps} steps, max images {t.max_images}, diffaug {t.diffaug}, flip {t.flip}, "
          f"set {' '.join(args.set) or '-'}, "
          f"{'' if seconds is None else f'{seconds:.0f} s, '}torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; run: {folder}")
    print(json.dumps({k: round(v, 3) for k, v in scores.items()}))


if __name__ == "__main__":
    main()
