"""Learning happens on real data: short DCGAN and CycleGAN runs on scikit-learn's
handwritten digits move their outputs toward real digits, measured against the untrained
networks (the CycleGAN one by an independent digit classifier)."""

from __future__ import annotations

import csv
import math

import numpy as np
import torch
from translator.plugins.datasets.digit_reading import target_shares
from translator.plugins.datasets.digits import digit_images

from translator.config import TrainConfig
from translator.data.datasets import open_data
from translator.data.pipeline import to_tensor, to_uint8
from translator.registry import get_registry
from translator.training import train
from translator.training.runs import load_model


def _gray(generator, latent_dim: int) -> np.ndarray:
    noise = torch.randn(300, latent_dim, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return to_uint8(generator(noise)).mean(axis=3) / 255.0


def _distance_to_real(images: np.ndarray, real: np.ndarray) -> float:
    """Mean absolute difference of the average image: digits are bright strokes on black."""
    return float(np.abs(images.mean(axis=0) - real.mean(axis=0)).mean())


def test_dcgan_moves_toward_real_digits(tmp_path):
    spec = get_registry().model("dcgan")
    run = tmp_path / "run"
    cfg = TrainConfig(model="dcgan", data="digits", size=32, steps=150, batch_size=32,
                      out=str(run), log_every=25, sample_every=1000, checkpoint_every=1000)
    train(cfg, spec.config(ngf=32, ndf=32), progress=False)

    real = digit_images()[0].mean(axis=3) / 255.0
    torch.manual_seed(0)
    untrained = spec.build(spec.config(ngf=32, ndf=32, size=32)).nets["G"].eval()
    model, _, _ = load_model(run)
    before = _distance_to_real(_gray(untrained, 100), real)
    after = _distance_to_real(_gray(model.nets["G"], 100), real)
    assert after < 0.75 * before, (before, after)

    with open(run / "logs" / "losses.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 6
    assert all(math.isfinite(float(r["G"])) and math.isfinite(float(r["D"])) for r in rows)
    # The discriminator tells real from fake better than chance once it has trained.
    assert float(rows[-1]["D_accuracy"]) > 0.5


def _translation_shares(model, test) -> list[float]:
    """Held-out 6s translated and read as 9, held-out 9s translated and read as 6."""
    gens = model.generators()
    shares = []
    for key, direction, target in (("a", "a2b", 9), ("b", "b2a", 6)):
        images = to_tensor([test[key].load(i) for i in range(len(test[key]))])
        with torch.no_grad():
            shares.append(target_shares(to_uint8(gens[direction].module(images)), target)[0])
    return shares


def test_cyclegan_learns_to_turn_held_out_sixes_into_nines_and_back(tmp_path):
    # Small networks and 150 steps: under a minute on two shared cores. DiffAugment off,
    # as translation models train by default (it slows the first steps, BENCHMARKS.md).
    spec = get_registry().model("cyclegan")
    small = spec.config(ngf=8, ndf=8, blocks=2, size=32)
    cfg = TrainConfig(model="cyclegan", data="digits", domain_a="6", domain_b="9", size=32,
                      steps=150, batch_size=4, diffaug="none", out=str(tmp_path / "run"),
                      log_every=50, sample_every=1000, checkpoint_every=1000, workers=0)
    train(cfg, small, progress=False)
    test = open_data(cfg, "translation", "test")

    torch.manual_seed(0)
    before = _translation_shares(spec.build(small).eval(), test)
    after = _translation_shares(load_model(tmp_path / "run")[0], test)
    # Measured: untrained 0.00 / 0.00, trained 0.73 / 0.72 (6->9 / 9->6).
    assert all(a >= b + 0.4 for a, b in zip(after, before, strict=True)), (before, after)
