"""The noise-to-image family: shapes per size, and the adaptive balance rule."""

from __future__ import annotations

import pytest
import torch

from translator.registry import get_registry
from translator.training.gan import StepContext


@pytest.mark.parametrize("name", ["dcgan", "wgan", "wgan-gp"])
@pytest.mark.parametrize("size", [32, 64, 128])
def test_generator_makes_images_of_the_training_size(name, size):
    spec = get_registry().model(name)
    model = spec.build(spec.config(size=size, ngf=8, ndf=8))
    gen = model.generators()["generator"]
    out = gen.module(gen.example_input(2, size))
    assert out.shape == (2, 3, size, size) and out.abs().max() <= 1
    assert model.nets["D"](out).shape == (2,)


def test_adaptive_balance_trains_whichever_side_is_losing():
    spec = get_registry().model("dcgan")
    model = spec.build(spec.config(size=32, ngf=8, ndf=8, balance="adaptive"))
    model.configure_optimizers()
    ctx = StepContext(torch.device("cpu"))
    batch = {"images": torch.rand(4, 3, 32, 32) * 2 - 1}

    model.last_accuracy = 0.2  # the discriminator is being fooled: it trains, alone
    trained = []
    for _ in range(6):
        model.last_accuracy = min(model.last_accuracy, 0.2)
        trained.append("G" if "G" in model.train_step(batch, ctx) else "D")
    # ...at most five times in a row, then the generator gets its turn.
    assert trained == ["D"] * 5 + ["G"]

    model.last_accuracy = 0.9  # the discriminator is winning: the generator trains
    out = model.train_step(batch, ctx)
    assert "G" in out and "D" not in out
