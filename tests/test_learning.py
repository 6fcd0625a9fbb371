"""Learning happens on real data: a short DCGAN run on scikit-learn's handwritten digits
moves its samples toward the real digits, measured against the untrained generator."""

from __future__ import annotations

import csv
import math

import numpy as np
import torch

from translator.config import TrainConfig
from translator.data.builtin import digit_images
from translator.data.pipeline import to_uint8
from translator.registry import get_registry
from translator.runs import load_model
from translator.training import train


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
