"""capture_state and restore_state: what one takes, through a checkpoint, the other puts back."""

from __future__ import annotations

import torch

from translator.checkpoint import find_checkpoint, load_state, save_checkpoint
from translator.device import Distributed
from translator.registry import get_registry
from translator.training import LossSums, capture_state, restore_state


def _fresh_dcgan():
    spec = get_registry().model("dcgan")
    torch.manual_seed(0)
    model = spec.build(spec.config(ngf=8, ndf=8))
    optimizers = model.configure_optimizers()
    return model, optimizers, model.configure_schedulers(optimizers, 10)


def test_restore_state_puts_back_what_capture_state_took(tmp_path):
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
    state = capture_state(7, "dcgan", model, optimizers, schedulers, {}, fixed=fixed,
                          partial=partial)
    next_draw = torch.rand(5)
    save_checkpoint(tmp_path, 7, model.nets.state_dict(), state)
    folder = find_checkpoint(tmp_path)

    model2, optimizers2, schedulers2 = _fresh_dcgan()
    torch.manual_seed(123)
    step, fixed2, partial2 = restore_state(
        load_state(folder), folder, model2, optimizers2, schedulers2, {}, Distributed(),
        torch.device("cpu"), {"z": torch.zeros(4, 8)})

    assert step == 7
    assert torch.equal(torch.rand(5), next_draw)
    assert torch.equal(fixed2["z"], fixed["z"])
    assert partial2.take_means() == {"D": 1.0, "G": 2.0}
    for name, opt in optimizers.items():
        saved, restored = opt.state_dict()["state"], optimizers2[name].state_dict()["state"]
        assert saved.keys() == restored.keys() and saved
        for index, moments in saved.items():
            for key, value in moments.items():
                assert torch.equal(restored[index][key], value), (name, index, key)
