"""`gantool evaluate RUN`: figures and a grid from a run's checkpoint, for translation runs
(digits and demo data), generation runs and a plugin's own figures."""

from __future__ import annotations

import dataclasses
import json
import types
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import translator
from translator.config import TrainConfig
from translator.data.datasets import open_data
from translator.data.pipeline import resize_square, to_tensor
from translator.evaluate import EvalOptions, evaluate_run
from translator.registry import get_registry
from translator.training import train
from translator.training.gan import ExportableGenerator, GANModel

TINY = {"ngf": 8, "ndf": 8, "d_layers": 2}


def _train(run, model: str, steps: int, model_config=None, **train_args):
    spec = get_registry().model(model)
    cfg = TrainConfig(model=model, size=32, steps=steps, batch_size=4, out=str(run),
                      log_every=steps, sample_every=1000, checkpoint_every=1000, **train_args)
    train(cfg, model_config or spec.config(**TINY), progress=False)
    return run


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """A digits 6<->9 CycleGAN run: checkpoints after 1 step and after 40."""
    run = tmp_path_factory.mktemp("evaluate") / "digits"
    _train(run, "cyclegan-mobile", 1, data="digits", domain_a="6", domain_b="9")
    train(TrainConfig(steps=40), resume=run, progress=False)
    return run


def _figures(path):
    return json.loads(path.read_text())


def test_digits_run_gets_its_grid_figures_and_table(run_cli, digits_run):
    result = run_cli("evaluate", digits_run, "--no-progress")
    assert result.exit_code == 0, result.output
    out = digits_run / "eval" / "step-0000040"
    data = _figures(out / "figures.json")
    assert data["step"] == 40 and data["images_from"] == "digits test split"
    a2b, b2a = data["columns"]["a2b"], data["columns"]["b2a"]
    assert (a2b["label"], b2a["label"]) == ("6->9", "9->6")
    # The whole test split: every fifth 6 (181 of them) and 9 (180).
    assert (a2b["images"], b2a["images"]) == (37, 36)
    for column in (a2b, b2a):
        figures = column["figures"]
        assert set(figures) == {"cycle L1", "identity L1", "read as target", "not a digit",
                                "real read as source"}
        assert all(0 <= v <= 1 for v in figures.values())
        # The classifier reads the real held-out digits as themselves.
        assert figures["real read as source"] > 0.85
    for line in ("6->9", "cycle L1", "identity L1", "read as target", "not a digit"):
        assert line in result.output
    grid = np.asarray(Image.open(out / "grid.png"))
    # 8 rows of real | translated | reconstructed for 6s, then for 9s; cells of 64 px.
    assert grid.shape == (8 * 66 + 2, 6 * 66 + 2, 3)


def test_cycle_and_identity_l1_fall_as_the_digits_run_trains(digits_run, tmp_path):
    early = evaluate_run(digits_run, step=1, options=EvalOptions(out=tmp_path / "early"),
                         progress=False)
    late = evaluate_run(digits_run, options=EvalOptions(out=tmp_path / "late"), progress=False)
    assert early.step == 1 and late.step == 40
    for direction in ("a2b", "b2a"):
        for name in ("cycle L1", "identity L1"):
            before, after = early.figures[direction][name], late.figures[direction][name]
            assert after < 0.8 * before, (direction, name, before, after)


def test_max_images_and_out(run_cli, digits_run, tmp_path):
    result = run_cli("evaluate", digits_run, "--max-images", "3", "-o", tmp_path / "e",
                     "--checkpoint", "1", "--no-progress")
    assert result.exit_code == 0, result.output
    data = _figures(tmp_path / "e" / "figures.json")
    assert data["step"] == 1
    assert [c["images"] for c in data["columns"].values()] == [3, 3]
    assert np.asarray(Image.open(tmp_path / "e" / "grid.png")).shape[0] == 3 * 66 + 2


def test_the_commands_other_options_are_exactly_the_eval_options():
    # The command hands them to EvalOptions by name: a renamed flag must fail here.
    from translator.cli.evaluate import evaluate_command

    own = {"run", "checkpoint", "no_progress"}
    passed_on = {param.name for param in evaluate_command.params} - own
    assert passed_on == {field.name for field in dataclasses.fields(EvalOptions)}


def test_demo_run_gets_l1_figures_only(run_cli, tmp_path):
    run = _train(tmp_path / "demo", "cyclegan-mobile", 2, data="demo")
    result = run_cli("evaluate", run, "--max-images", "6", "--no-progress")
    assert result.exit_code == 0, result.output
    data = _figures(run / "eval" / "step-0000002" / "figures.json")
    assert data["images_from"] == "demo test split"
    for column in data["columns"].values():
        assert set(column["figures"]) == {"cycle L1", "identity L1"}
        # An untrained generator changes day scenes a lot, but not beyond the pixel range.
        assert all(0.05 < v < 1 for v in column["figures"].values())
    assert (run / "eval" / "step-0000002" / "grid.png").is_file()


def test_generation_run_on_digits_reads_its_samples(run_cli, tmp_path):
    spec = get_registry().model("wgan-gp")
    run = _train(tmp_path / "gen", "wgan-gp", 2, spec.config(), data="digits")
    result = run_cli("evaluate", run, "--max-images", "40", "--no-progress")
    assert result.exit_code == 0, result.output
    data = _figures(run / "eval" / "step-0000002" / "figures.json")
    figures = data["columns"]["samples"]["figures"]
    assert data["columns"]["samples"]["images"] == 40
    assert set(figures) == {"diversity L1", "classes covered", "mean top p", "not a digit"}
    assert isinstance(figures["classes covered"], int) and 0 <= figures["classes covered"] <= 10
    assert 0 < figures["diversity L1"] < 1
    # 40 samples in rows of 8, cells of 64 px.
    assert np.asarray(Image.open(run / "eval" / "step-0000002" / "grid.png")).shape[:2] == (
        5 * 66 + 2, 8 * 66 + 2)


def test_no_checkpoint_and_not_a_run_are_one_error_line(run_cli, digits_run, tmp_path):
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "config.json").write_text((digits_run / "config.json").read_text())
    result = run_cli("evaluate", bare)
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [f"Error: no checkpoint in {bare / 'checkpoints'}"]
    result = run_cli("evaluate", tmp_path)
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [f"Error: {tmp_path} is not a run folder "
                                                  "(no config.json)"]
    result = run_cli("evaluate", digits_run, "--checkpoint", "999")
    assert result.exit_code == 1 and "no checkpoint at step 999" in result.output


# -- a plugin's own model and figures: figures computed exactly ---------------------------------
@dataclass
class ScaleConfig:
    size: int = 32
    scale: float = 1.0


class ScaleGAN(GANModel):
    """Both generators multiply by ``scale``: 1 is the identity, -1 an inversion."""

    kind = "translation"

    def __init__(self, config: ScaleConfig) -> None:
        super().__init__(config)
        linear = nn.Linear(1, 1, bias=False)
        nn.init.constant_(linear.weight, config.scale)
        self.nets["w"] = linear

    def configure_optimizers(self):
        return {"w": torch.optim.SGD(self.parameters(), lr=0.0)}

    def train_step(self, batch, ctx):
        return {"zero": torch.zeros(())}

    def sample_grid(self, fixed):
        return fixed["a"], 4

    def generators(self):
        linear = self.nets["w"]
        assert isinstance(linear, nn.Linear)
        module = _Scale(linear)
        return {d: ExportableGenerator(module, "translation", size_multiple=1) for d in ("a2b", "b2a")}


class _Scale(nn.Module):
    def __init__(self, w: nn.Linear) -> None:
        super().__init__()
        self.w = w

    def forward(self, x):
        return x * self.w.weight[0, 0]


class MeanOutput:
    def __init__(self):
        self.values = []

    def update(self, batch):
        self.values.append(batch.outputs.mean(dim=(1, 2, 3)))

    def result(self):
        return {"mean output": float(torch.cat(self.values).mean())}


class Broken:
    def update(self, batch):
        raise RuntimeError("kaput")

    def result(self):
        return {}


@pytest.fixture
def scale_plugin(fresh_plugins):
    @translator.hookimpl
    def register_models(register):
        register(translator.ModelSpec("scale", "translation", "test", ScaleConfig, ScaleGAN))

    @translator.hookimpl
    def register_figures(register):
        register(translator.FigureSpec("mean-output", "mean of the outputs",
                                       lambda run, column: MeanOutput()))
        register(translator.FigureSpec("broken", "raises", lambda run, column: Broken()))
        register(translator.FigureSpec(
            "generation-only", "never applies here",
            lambda run, column: MeanOutput() if column.kind == "generation" else None))

    module = types.ModuleType("scale_plugin")
    vars(module).update(register_models=register_models, register_figures=register_figures)
    fresh_plugins.add_plugin(module, "scale-plugin")
    return fresh_plugins


def _demo_test_images(key: str, count: int) -> torch.Tensor:
    lst = open_data(TrainConfig(data="demo"), "translation", "test")[key]
    return to_tensor([resize_square(lst.load(i), 32) for i in range(count)])


@pytest.mark.parametrize("scale", [-1.0, 0.5])
def test_l1_figures_are_exact_for_a_model_we_can_compute(scale_plugin, tmp_path, scale):
    run = _train(tmp_path / "scale", "scale", 1, ScaleConfig(scale=scale), data="demo")
    result = evaluate_run(run, options=EvalOptions(max_images=10, batch_size=4), progress=False)
    a = _demo_test_images("a", 10)
    b = _demo_test_images("b", 10)
    figures = result.figures["a2b"]
    # Translated and back: x * scale^2; identity on B images: b * scale.
    assert figures["cycle L1"] == pytest.approx(float((a * scale**2 - a).abs().mean() / 2), abs=1e-5)
    assert figures["identity L1"] == pytest.approx(float((b * scale - b).abs().mean() / 2), abs=1e-5)
    assert figures["mean output"] == pytest.approx(float((a * scale).mean()), abs=1e-5)
    assert "generation-only" not in figures and "broken" not in json.dumps(figures)
    assert any("figure 'broken' failed: RuntimeError: kaput" in n for n in result.notes)


def test_the_identity_model_scores_zero_and_the_table_shows_plugin_figures(
        scale_plugin, run_cli, tmp_path):
    run = _train(tmp_path / "scale", "scale", 1, ScaleConfig(scale=1.0), data="demo")
    result = run_cli("evaluate", run, "--max-images", "4", "--no-progress")
    assert result.exit_code == 0, result.output
    rows = {line.split()[0] + " " + line.split()[1]: line.split()[2:]
            for line in result.output.splitlines() if "L1" in line}
    assert rows["cycle L1"] == ["0.000", "0.000"] and rows["identity L1"] == ["0.000", "0.000"]
    assert "mean output" in result.output
    assert "note: figure 'broken' failed" in result.output


def test_digit_reading_reads_real_digits_as_the_target_and_noise_as_no_digit():
    from translator.plugins.datasets.digit_reading import DigitReading
    from translator.plugins.datasets.digits import digit_images

    from translator.evaluate import Column, EvalBatch

    column = Column("a2b", "translation", "6", "9")
    sixes, nines = (to_tensor(list(digit_images(d)[0][:40])) for d in (6, 9))
    reading = DigitReading(column)
    reading.update(EvalBatch(column, sixes, nines, sixes))
    figures = reading.result()
    assert figures["read as target"] > 0.9 and figures["real read as source"] > 0.9
    assert figures["not a digit"] < 0.1
    noise = DigitReading(column)
    noise.update(EvalBatch(column, sixes, torch.rand_like(nines) * 2 - 1, sixes))
    assert noise.result()["not a digit"] > 0.9 and noise.result()["read as target"] < 0.5


def test_data_without_a_test_split_uses_every_tenth_training_image(scale_plugin, run_cli,
                                                                    tmp_path):
    rng = np.random.default_rng(0)
    for domain in ("day", "night"):
        (tmp_path / "data" / domain).mkdir(parents=True)
        for i in range(23):
            pixels = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "data" / domain / f"{i:02d}.png")
    run = _train(tmp_path / "run", "scale", 1, ScaleConfig(scale=0.5), data=str(tmp_path / "data"),
                 domain_a="day", domain_b="night")
    result = run_cli("evaluate", run, "--no-progress")
    assert result.exit_code == 0, result.output
    assert "has no test split: every 10th training image (seen in training)" in result.output
    data = _figures(run / "eval" / "step-0000001" / "figures.json")
    assert [c["images"] for c in data["columns"].values()] == [3, 3]  # images 0, 10 and 20
    assert "no test split" in data["images_from"]
