"""Does the gender swap work on real faces? Train CycleGAN male<->female on a CelebA root
with gantool's defaults and a step budget, then read its translations of held-out people
with the independent judge of ``gantool evaluate`` (dlib's CC0 gender network and face
embeddings; needs ``pip install "gantool[faces]"``).

    python benchmarks/faces.py --data ../shared/faces-celeba --steps 1500
    python benchmarks/faces.py --data ../shared/faces-celeba --steps 1500 --set lambda_identity=0
    python benchmarks/faces.py --data ../shared/faces-celeba --model cut --domains female male
    python benchmarks/faces.py --table runs-faces     # every row measured so far

Only ``--steps`` (and ``--model``, ``--size``, ``--set``) differ from what
``gantool train cyclegan --data DIR --domain-a male --domain-b female`` does (its defaults
for data sets of faces included). Each run
appends one row to ``OUT/results.jsonl``: training minutes, and per direction the share of
translations read as the target gender, the judge's accuracy on the real inputs, the share
whose face is still the same person (dlib embedding distance under 0.6), and cycle L1.
Two variants can run side by side: give each ``OMP_NUM_THREADS=1``.
On a GPU machine without the judge, ``--no-judge`` trains and writes the row without
figures; ``--rejudge VARIANT`` on a machine with the judge fills them in.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time
from pathlib import Path

import torch
from variants import overrides

from translator.config import TrainConfig, config_from_dict
from translator.data.datasets import data_defaults
from translator.evaluate import evaluate_run
from translator.registry import get_registry
from translator.training import train

COLUMNS = [("m->f female", "male->female read as target"),
           ("f->m male", "female->male read as target"),
           ("judge m", "male->female real read as source"),
           ("judge f", "female->male real read as source"),
           ("id m->f", "male->female identity kept"),
           ("id f->m", "female->male identity kept"),
           ("cycle m", "male->female cycle L1"),
           ("cycle f", "female->male cycle L1")]


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def run(args: argparse.Namespace) -> dict:
    spec = get_registry().model(args.model)
    # gantool's defaults for this model on faces (its face_defaults), then --set.
    faces = [f"{k}={json.dumps(v)}" for k, v in data_defaults(spec, args.data).items()]
    train_values, model_values = overrides(faces + args.set, spec.config)
    name = args.name or "-".join([args.model, *_direction(args), f"{args.size}px",
                                  f"{args.steps}st", *args.set]) \
        .replace("=", "").replace("/", "_")
    out = Path(args.out) / name
    cfg = config_from_dict(TrainConfig, {
        **spec.train_defaults, "model": args.model, "data": args.data, "size": args.size,
        "domain_a": args.domains[0], "domain_b": args.domains[1], "steps": args.steps,
        "seed": args.seed,
        "out": str(out), "sample_every": max(1, args.steps // 5), **train_values})
    start = time.perf_counter()
    train(cfg, dataclasses.replace(spec.config(), **model_values), progress=args.progress)
    minutes = (time.perf_counter() - start) / 60
    figures, notes = {}, ["not judged yet: faces.py --rejudge on a machine with the judge"]
    if not args.no_judge:
        evaluation = evaluate_run(out, progress=args.progress)
        figures, notes = evaluation.flat(), evaluation.notes
    row = {"variant": name, "model": args.model, "size": args.size, "steps": args.steps,
           "set": args.set, "train_minutes": round(minutes, 1), "threads": torch.get_num_threads(),
           "cpu": cpu_name(), "device": _device_name(), "date": time.strftime("%Y-%m-%d"),
           "figures": figures, "notes": notes}
    with open(Path(args.out) / "results.jsonl", "a") as fh:
        fh.write(json.dumps(row) + "\n")
    return row


def _device_name() -> str:
    """Where the run trained: the GPU's name on a CUDA machine, else "cpu"."""
    return torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"


def _direction(args: argparse.Namespace) -> list[str]:
    """The domains in a run's name, where they are not the default male -> female."""
    return [] if args.domains == ["male", "female"] else ["2".join(args.domains)]


def rejudge(out: Path, name: str) -> dict:
    """Evaluate the run ``name`` in ``out`` again (e.g. with the judge installed later) and
    put its new figures in its row of ``results.jsonl``."""
    results = out / "results.jsonl"
    rows = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    (row,) = [r for r in rows if r["variant"] == name]
    evaluation = evaluate_run(out / name, progress=False)
    row.update(figures=evaluation.flat(), notes=evaluation.notes)
    results.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return row


def table(rows: list[dict]) -> str:
    head = ["variant", "min", *[c for c, _ in COLUMNS]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [row["variant"], f"{row['train_minutes']:.1f}"]
        cells += [_cell(row["figures"].get(key)) for _, key in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(value) -> str:
    return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="a CelebA root (img_align_celeba/, list_attr_celeba.txt)")
    parser.add_argument("--model", default="cyclegan")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="training or model options that differ from the defaults")
    parser.add_argument("--domains", nargs=2, default=["male", "female"], metavar=("A", "B"),
                        help="domain A and B; one-way models (cut, fastcut) learn A->B only: "
                        "train --domains female male as a run of its own")
    parser.add_argument("--name", help="the variant's name (default: from the options)")
    parser.add_argument("--out", default="runs-faces", help="folder for runs and results.jsonl")
    parser.add_argument("--table", metavar="OUT", help="print OUT/results.jsonl as a table")
    parser.add_argument("--rejudge", metavar="VARIANT", help="evaluate a finished run of OUT again")
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--no-judge", action="store_true",
                        help="train only (e.g. on a GPU machine without the judge); judge "
                        "the run later with --rejudge")
    args = parser.parse_args()
    if args.table:
        lines = Path(args.table, "results.jsonl").read_text().splitlines()
        print(table([json.loads(line) for line in lines if line.strip()]))
        return
    if args.rejudge:
        print(table([rejudge(Path(args.out), args.rejudge)]))
        return
    if not args.data:
        parser.error("--data is required")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    row = run(args)
    print(table([row]))
    print(f"{row['cpu']}, {row['threads']} threads, {row['date']}")


if __name__ == "__main__":
    main()
