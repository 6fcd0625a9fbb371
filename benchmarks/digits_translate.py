"""Does a translation model learn? Train it on two digits of the real handwritten digits set
with gantool's defaults and a step budget, then read its translations of held-out digits
with an independent digit classifier.

    python benchmarks/digits_translate.py --steps 1500 --pair 6 9
    python benchmarks/digits_translate.py --model cut --steps 1500 --pair 6 9
    python benchmarks/digits_translate.py --steps 1500 --pair 6 9 --max-images 20
    python benchmarks/digits_translate.py --steps 1500 --set diffaug=none lambda_identity=0

Only ``--steps`` (and ``--max-images``, ``--set``) differ from what
``gantool train MODEL --data digits --domain-a 6 --domain-b 9 --size 32`` does.
Prints `gantool evaluate`'s figures for each direction: the share of held-out translations
read as the target digit and as "not a digit", the cycle and identity errors (mean absolute
difference, pixels scaled to [0, 1]), and the classifier's reading of the real inputs.
One-way models (``cut``, ``fastcut``: A->B only; train B->A as a run of its own with
``--pair 9 6``) get the A->B figures, without the cycle error that needs a way back;
``--direction a2b`` reads only the classifier's A->B figures of any model.
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
from translator.plugins.datasets.digit_reading import DigitReading
from variants import overrides

from translator.config import TrainConfig, config_from_dict
from translator.data.datasets import open_data
from translator.data.pipeline import resize_square, to_tensor
from translator.evaluate import Column, EvalBatch, evaluate_run
from translator.registry import get_registry
from translator.training import train
from translator.training.runs import load_model, read_run_config


def evaluate(run: Path) -> dict[str, float]:
    """``gantool evaluate``'s figures of the run's held-out digits, by column label."""
    return evaluate_run(run, progress=False).flat()


@torch.no_grad()
def read_a2b(run: Path) -> dict[str, float]:
    """The classifier's figures of the A->B direction alone, labelled as `gantool evaluate`
    labels them: for models that learn one direction (and to compare others on it)."""
    model, rc, _ = load_model(run)
    t = rc.train
    held_out = open_data(t, "translation", "test")["a"]
    column = Column("a2b", "translation", t.domain_a, t.domain_b)
    reading = DigitReading(column)
    images = to_tensor([resize_square(held_out.load(i), t.size) for i in range(len(held_out))])
    translated = model.generators()["a2b"].module(images).float().clamp(-1, 1)
    reading.update(EvalBatch(column, images, translated))
    return {f"{column.label} {name}": value for name, value in reading.result().items()}


def read(run: Path, direction: str) -> dict[str, float]:
    """Every direction the model has (``all``), or the classifier's A->B figures alone."""
    return evaluate(run) if direction == "all" else read_a2b(run)


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
    parser.add_argument("--direction", choices=["all", "a2b"], default="all",
                        help="what to read: gantool evaluate's figures of every direction the "
                        "model has, or the classifier's A->B figures only")
    parser.add_argument("--score", type=Path, default=None, metavar="RUN",
                        help="only score an existing run (e.g. after gantool train --resume)")
    args = parser.parse_args()
    if args.score is not None:
        folder, seconds = args.score, None
    else:
        folder = args.out or Path(tempfile.mkdtemp(prefix=f"gantool-digits-{args.model}-")) / "run"
        began = time.perf_counter()
        run(args, folder)
        seconds = time.perf_counter() - began
    rc = read_run_config(folder)
    t = rc.train
    scores = read(folder, args.direction)
    arrow = "<->" if any(k.startswith(f"{t.domain_b}->") for k in scores) else "->"
    print(f"\n{rc.spec.name}, digits {t.domain_a}{arrow}{t.domain_b}, {t.size} px, batch {t.batch_size}, "
          f"{t.steps} steps, max images {t.max_images}, diffaug {t.diffaug}, flip {t.flip}, "
          f"set {' '.join(args.set) or '-'}, "
          f"{'' if seconds is None else f'{seconds:.0f} s, '}torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; run: {folder}")
    print(json.dumps({k: round(v, 3) for k, v in scores.items()}))


if __name__ == "__main__":
    main()
