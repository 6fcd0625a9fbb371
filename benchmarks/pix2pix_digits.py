"""Does pix2pix's adversarial term earn its keep? Train pix2pix and an L1-only U-Net of the
same size (``--lambda-gan 0``: no discriminator) on ``digit-edges`` (the outline of each of
scikit-learn's real handwritten digits -> the digit), then measure both on the held-out
fifth of the digits.

    python benchmarks/pix2pix_digits.py --steps 1000
    python benchmarks/pix2pix_digits.py --steps 3000 --ngf 32 --batch-size 16

Figures per model, on held-out pairs: the share of translations an independent digit
classifier (``translator.plugins.datasets.digit_reading``, fitted on the real digits only)
reads as the digit the edges came from; the mean absolute difference to the real digit
(pixels scaled to [0, 1]); PSNR against it (dB); and how decided the pixels are (the share
within 10% of black or white: a blurred stroke is grey). Two rows frame them: the edges
themselves as the answer, and the real digits (the classifier's own accuracy).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from translator.plugins.datasets.digit_edges import edge_pairs
from translator.plugins.datasets.digit_reading import read_digits

from translator.config import TrainConfig
from translator.data.pipeline import to_tensor, to_uint8
from translator.registry import get_registry
from translator.training import train
from translator.training.runs import load_model


@dataclass(frozen=True)
class Row:
    name: str
    read: float
    l1: float
    psnr: float
    decided: float
    seconds: float = 0.0

    def markdown(self) -> str:
        time_text = f"{self.seconds:.0f}" if self.seconds else "-"
        psnr = f"{self.psnr:.2f}" if np.isfinite(self.psnr) else "inf"
        return (f"| {self.name} | {self.read:.3f} | {self.l1:.4f} | {psnr} | "
                f"{self.decided:.3f} | {time_text} |")


def figures(name: str, made: np.ndarray, seconds: float = 0.0) -> Row:
    """The held-out figures of ``[N, 32, 32, 3]`` uint8 images against the real digits."""
    _, digits, labels = edge_pairs("test")
    diff = made.astype(np.float64) / 255.0 - digits.astype(np.float64) / 255.0
    mse = float((diff**2).mean())
    gray = made.astype(np.float64) / 255.0
    decided = float(((gray < 0.1) | (gray > 0.9)).mean())
    return Row(name, float((read_digits(made) == labels).mean()), float(np.abs(diff).mean()),
               10 * np.log10(1.0 / mse) if mse > 0 else float("inf"), decided, seconds)


@torch.no_grad()
def translate(run: Path) -> np.ndarray:
    """The run's held-out translations, in eval mode (as exported)."""
    model, _, _ = load_model(run)
    edges, _, _ = edge_pairs("test")
    return to_uint8(model.generators()["a2b"].module.eval()(to_tensor(list(edges))))


def train_one(args: argparse.Namespace, lambda_gan: float, out: Path) -> float:
    spec = get_registry().model("pix2pix")
    cfg = TrainConfig(model="pix2pix", data="digit-edges", size=32, steps=args.steps,
                      batch_size=args.batch_size, out=str(out), log_every=100,
                      sample_every=10**9, checkpoint_every=10**9, seed=args.seed)
    start = time.perf_counter()
    train(cfg, spec.config(ngf=args.ngf, ndf=args.ngf, lr=args.lr, lambda_gan=lambda_gan),
          progress=False)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--ngf", type=int, default=16, help="generator and discriminator width")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    edges, digits, _ = edge_pairs("test")
    rows = [figures("edges as the answer", edges), figures("real digits", digits)]
    with tempfile.TemporaryDirectory(prefix="gantool-p2p-") as tmp:
        for name, lambda_gan in (("pix2pix (L1 100 + GAN)", 1.0), ("L1-only U-Net", 0.0)):
            run = Path(tmp) / name.split()[0]
            seconds = train_one(args, lambda_gan, run)
            rows.append(figures(name, translate(run), seconds))
    print(f"steps {args.steps}, batch {args.batch_size}, ngf = ndf = {args.ngf}, lr {args.lr}, "
          f"seed {args.seed}; {len(edges)} held-out pairs")
    print("| model | read as its digit | L1 | PSNR (dB) | decided pixels | train s |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(row.markdown())


if __name__ == "__main__":
    main()
