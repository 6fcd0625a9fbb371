"""TrainingState: what ``state_dict`` takes, through a checkpoint, ``load_state_dict`` puts back."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from translator.errors import GantoolError
from translator.registry import get_registry
from translator.training.checkpoint import find_checkpoint, load_state, save_checkpoint
from translator.training.device import Distributed
from translator.training.gan import GANModel
from translator.training.state import LossSums, TrainingState


def _fresh_dcgan() -> tuple[GANModel, dict[str, torch.optim.Optimizer], dict[str, Any]]:
    spec = get_registry().model("dcgan")
    torch.manual_seed(0)
    model = spec.build(spec.config(ngf=8, ndf=8))
    optimizers = model.configure_optimizers()
    return model, optimizers, model.configure_schedulers(optimizers, 10)


def test_load_state_dict_puts_back_what_state_dict_took(tmp_path):
    model, optimizers, schedulers = _fresh_dcgan()
    for opt in optimizers.values():  # one step each, so the optimizers have moments to keep
        for group in opt.param_groups:
            for param in group["params"]:
                param.grad = torch.randn_like(param)
        opt.step()
    partial = LossSums()
    partial.add({"D": torch.tensor(1.5)})
    partial.add({"D": torch.tensor(0.5), "G": torch.tensor(2.0)})
    fixed = {"z": torch.randn(4, 8)}
    state = TrainingState("dcgan", model, optimizers, schedulers, fixed=fixed, partial=partial,
                          step=7).state_dict()
    assert state is not None  # a single process is the main rank
    next_draw = torch.rand(5)
    save_checkpoint(tmp_path, 7, model.nets.state_dict(), state)
    folder = find_checkpoint(tmp_path)

    model2, optimizers2, schedulers2 = _fresh_dcgan()
    torch.manual_seed(123)
    restored = TrainingState("dcgan", model2, optimizers2, schedulers2, fixed={"z": torch.zeros(4, 8)},
                             dist=Distributed(), device=torch.device("cpu"))
    restored.load_state_dict(load_state(folder), folder)

    assert restored.step == 7
    assert torch.equal(torch.rand(5), next_draw)
    assert restored.fixed is not None and torch.equal(restored.fixed["z"], fixed["z"])
    assert restored.partial.take_means() == {"D": 1.0, "G": 2.0}
    for name, opt in optimizers.items():
        saved, restored = opt.state_dict()["state"], optimizers2[name].state_dict()["state"]
        assert saved.keys() == restored.keys() and saved
        for index, moments in saved.items():
            for key, value in moments.items():
                assert torch.equal(restored[index][key], value), (name, index, key)


def test_a_damaged_state_is_refused_with_the_checkpoint_named(tmp_path):
    model, optimizers, schedulers = _fresh_dcgan()
    saved = TrainingState("dcgan", model, optimizers, schedulers, step=3).state_dict()
    assert saved is not None
    del saved["step"]
    fresh = TrainingState("dcgan", *_fresh_dcgan())
    with pytest.raises(GantoolError, match=f"checkpoint {tmp_path} does not fit this model"):
        fresh.load_state_dict(saved, tmp_path)
    assert fresh.step == 0


def test_fixed_inputs_of_another_shape_are_refused(tmp_path):
    model, optimizers, schedulers = _fresh_dcgan()
    saved = TrainingState("dcgan", model, optimizers, schedulers,
                          fixed={"z": torch.randn(4, 8)}).state_dict()
    assert saved is not None
    fresh = TrainingState("dcgan", *_fresh_dcgan(), fixed={"z": torch.zeros(2, 8)})
    with pytest.raises(GantoolError, match="fixed sample inputs"):
        fresh.load_state_dict(saved, tmp_path)
