"""--ema: a moving average of the generators' weights, kept by the core for every model."""

from __future__ import annotations

import pytest
import torch

from translator.config import TrainConfig
from translator.errors import GantoolError
from translator.registry import get_registry
from translator.training import train
from translator.training.checkpoint import AVERAGE, find_checkpoint, load_average, load_weights
from translator.training.ema import WeightAverage, decay_at, generator_tensor_names
from translator.training.runs import load_model

TINY = {"ngf": 4, "ndf": 4, "blocks": 1}


def _tiny(name: str):
    spec = get_registry().model(name)
    small = {"ngf": 4, "ndf": 4, "size": 32, **({"blocks": 1} if name == "cyclegan" else {})}
    return spec.build(spec.config(**small))


@pytest.mark.parametrize(("name", "prefixes"), [("cyclegan", {"G_A", "G_B"}), ("dcgan", {"G"})])
def test_the_average_covers_the_generators_and_nothing_else(name, prefixes):
    names = generator_tensor_names(_tiny(name))
    assert {n.split(".")[0] for n in names} == prefixes
    if name == "dcgan":  # BatchNorm statistics are averaged with the weights
        assert any(n.endswith("running_mean") for n in names)


def test_update_folds_in_the_live_weights_and_swapping_restores_them():
    model = _tiny("dcgan")
    average = WeightAverage(model, decay=0.5)
    weight = model.nets["G"].net[0].weight
    start = weight.detach().clone()
    with torch.no_grad():
        weight.add_(1.0)
    average.update(step=100)  # past the warm-up: decay 0.5
    name = next(n for n in average.tensors if n.endswith("net.0.weight"))
    assert torch.allclose(average.tensors[name], start + 0.5)
    with average.swapped_in():
        assert torch.equal(weight, average.tensors[name])
    assert torch.equal(weight, start + 1.0)
    assert decay_at(0.999, 0) == pytest.approx(0.1) and decay_at(0.999, 10**6) == 0.999


def _train(tmp_path, name: str, steps: int = 6, stop_after: int | None = None, **flags):
    spec = get_registry().model("cyclegan")
    cfg = TrainConfig(model="cyclegan", data="digits", domain_a="6", domain_b="9", size=32,
                      steps=steps, batch_size=2, out=str(tmp_path / name), log_every=1,
                      checkpoint_every=3, workers=0, **flags)
    return train(cfg, spec.config(**TINY), progress=False, stop_after=stop_after).run_dir


def test_a_resumed_run_keeps_the_same_average_and_inference_uses_it(tmp_path):
    straight = _train(tmp_path, "straight", ema=0.9)
    stopped = _train(tmp_path, "stopped", ema=0.9, stop_after=3)
    train(TrainConfig(), resume=stopped, progress=False)
    a, b = (find_checkpoint(run / "checkpoints") for run in (straight, stopped))
    assert a.name == b.name == "step-0000006"
    for load in (load_weights, load_average):
        first, second = load(a), load(b)
        assert first is not None and second is not None
        assert first.keys() == second.keys()
        assert all(torch.equal(first[k], second[k]) for k in first)

    average, live = load_average(a), load_weights(a)
    assert average is not None  # the run kept one
    assert any(not torch.equal(average[k], live[k]) for k in average)  # really averaged
    used = load_model(straight)[0].nets.state_dict()
    assert all(torch.equal(used[k], average[k]) for k in average)
    assert all(torch.equal(used[k], live[k]) for k in live if k not in average)


def test_without_ema_a_checkpoint_has_no_average_and_bad_decays_are_refused(tmp_path):
    run = _train(tmp_path, "plain", steps=3)
    assert not (find_checkpoint(run / "checkpoints") / AVERAGE).exists()
    with pytest.raises(GantoolError, match="--ema must be between"):
        _train(tmp_path, "bad", steps=1, ema=1.0)


@pytest.mark.parametrize(("name", "averaged"), [("wgan-gp", True), ("dcgan", False)])
def test_wgan_gp_averages_its_generator_by_default(run_cli, tmp_path, name, averaged):
    run = tmp_path / name
    result = run_cli("train", name, "--data", "demo", "--steps", "2", "--size", "32",
                     "--batch-size", "2", "--ngf", "4", "--ndf", "4", "--out", run)
    assert result.exit_code == 0, result.output
    assert (find_checkpoint(run / "checkpoints") / AVERAGE).is_file() == averaged
