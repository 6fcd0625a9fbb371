"""CUT and FastCUT: PatchNCE's pieces, a run on digits from ``gantool train`` to ``gantool
apply`` through an exact resume, and a short CUT training on real digits that translates
held-out threes into eights that keep their input's shape (which PatchNCE, not the
adversarial loss, teaches). The model contract itself is checked in tests/test_contract.py
for every registered model."""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from translator.plugins.cut.model import CUT
from translator.plugins.cut.patchnce import (
    PatchHead,
    gather_patches,
    patch_nce,
    sample_locations,
)
from translator.plugins.datasets.digit_reading import target_shares

from translator.config import TrainConfig
from translator.data.datasets import open_data
from translator.data.pipeline import to_tensor, to_uint8
from translator.registry import get_registry
from translator.training import train
from translator.training.checkpoint import find_checkpoint
from translator.training.runs import load_model

RunCli = Callable[..., Any]


def _unit(rows: int, dim: int, seed: int) -> torch.Tensor:
    return torch.nn.functional.normalize(
        torch.randn(rows, dim, generator=torch.Generator().manual_seed(seed)), dim=1)


# -- PatchNCE's pieces -------------------------------------------------------------------------
def test_patch_nce_is_low_for_matching_patches_and_high_for_shuffled_ones() -> None:
    images, patches = 2, 64
    query = _unit(images * patches, 128, seed=0)
    same = patch_nce(query, query.clone(), images).mean().item()
    # Each image's keys in another order: a query's own location now holds another patch.
    order = torch.cat([torch.randperm(patches) + i * patches for i in range(images)])
    shuffled = patch_nce(query, query[order], images).mean().item()
    assert same < 0.01, same
    assert shuffled > 3.0, shuffled  # about log(64) = 4.2: the right key is a guess


def test_patch_nce_picks_negatives_from_the_same_image_only() -> None:
    # Image 1's keys are image 0's: only a loss that compares across images would notice.
    query = _unit(2 * 16, 32, seed=1)
    within = patch_nce(query, query.clone(), 2)
    assert within.shape == (32,)
    key = query.clone()
    key[16:] = query[:16]
    # Image 0's losses do not depend on image 1's keys.
    assert torch.equal(patch_nce(query, key, 2)[:16], within[:16])


def test_sampled_locations_are_the_same_in_the_input_and_its_translation() -> None:
    rows, cols = torch.meshgrid(torch.arange(6.0), torch.arange(5.0), indexing="ij")
    where = rows[None].expand(2, 6, 5), cols[None].expand(2, 6, 5)

    def features(other: float) -> torch.Tensor:
        # Channels 0 and 1 say where a vector is; channel 2 differs between the two maps.
        return torch.stack([*where, torch.full((2, 6, 5), other)], dim=1)

    locations = sample_locations([features(0.0)], 12)
    assert len(locations[0]) == 12 and len(set(locations[0].tolist())) == 12
    (source,), (translation,) = (gather_patches([features(v)], locations) for v in (0.0, 1.0))
    assert source.shape == (2 * 12, 3)
    assert torch.equal(source[:, :2], translation[:, :2])
    assert not torch.equal(source[:, 2], translation[:, 2])
    # A map with fewer locations than asked gives all of them, once each.
    assert sorted(sample_locations([features(0.0)], 100)[0].tolist()) == list(range(30))


def _small(name: str, **changes: Any) -> Any:
    spec = get_registry().model(name)
    return spec.config(size=32, ngf=8, ndf=8, blocks=1, d_layers=2, **changes)


def test_the_model_compares_translations_with_their_input_at_the_same_places() -> None:
    torch.manual_seed(0)
    model = CUT(_small("cut"))
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        itself = model.nce_loss(x, x).item()
        # The same image moved: the features at each sampled place are now another place's.
        moved = model.nce_loss(x, x.roll(9, dims=3)).item()
    assert itself < 0.5 * moved, (itself, moved)


def test_the_projection_head_is_part_of_the_model_from_the_start() -> None:
    model = CUT(_small("fastcut"))
    head = model.nets["F"]
    assert isinstance(head, PatchHead)
    # Sized from the encoder's layers: the padded input (3), then the two downsamplings.
    assert model.encoder.layers == (0, 4, 8)
    first_layers = [m for m in head.modules() if isinstance(m, torch.nn.Linear)][::2]
    assert [layer.in_features for layer in first_layers] == [3, 16, 32]
    assert any(k.startswith("F.") for k in model.nets.state_dict())
    trained = {id(p) for group in model.configure_optimizers()["G"].param_groups
               for p in group["params"]}
    assert {id(p) for p in head.parameters()} <= trained
    assert set(model.generators()) == {"a2b"}
    assert not model.config.nce_idt and model.config.lambda_nce == 10.0


def test_models_lists_both_with_their_sizes(run_cli: RunCli) -> None:
    result = run_cli("models")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    for name in ("cut", "fastcut"):
        row = next(i for i, line in enumerate(lines) if line.split()[:1] == [name])
        assert "PatchNCE head" in lines[row + 1] and "M parameters" in lines[row + 1]


# -- gantool train, resume, export, apply --------------------------------------------------
FLAGS = ["--data", "digits", "--domain-a", "3", "--domain-b", "8", "--size", "32", "--steps",
         "4", "--ngf", "8", "--ndf", "8", "--blocks", "1", "--d-layers", "2", "--batch-size",
         "2", "--log-every", "1", "--checkpoint-every", "2", "--sample-every", "1000",
         "--workers", "0", "--ema", "0.9"]


def _checkpoint_tensors(run: Path) -> dict[str, torch.Tensor]:
    folder = find_checkpoint(run / "checkpoints")
    return {f"{path.name}:{key}": value for path in sorted(folder.glob("*.safetensors"))
            for key, value in load_file(str(path)).items()}


@pytest.mark.parametrize("name", ["cut", "fastcut"])
def test_train_resume_export_and_apply(run_cli: RunCli, tmp_path: Path, name: str) -> None:
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    result = run_cli("train", name, *FLAGS, "--out", straight)
    assert result.exit_code == 0, result.output

    # The same run stopped after step 3 (its last checkpoint at step 2), then resumed.
    cfg = TrainConfig(model=name, data="digits", domain_a="3", domain_b="8", size=32, steps=4,
                      batch_size=2, log_every=1, checkpoint_every=2, sample_every=1000,
                      workers=0, ema=0.9, out=str(stopped))
    train(cfg, _small(name), progress=False, stop_after=3)
    result = run_cli("train", "--resume", stopped)
    assert result.exit_code == 0, result.output
    a, b = _checkpoint_tensors(straight), _checkpoint_tensors(stopped)
    assert any(k.startswith("ema.safetensors:") for k in a) and any(".F." in k or ":F." in k for k in a)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    logs = [(run / "logs" / "losses.csv").read_text() for run in (straight, stopped)]
    assert logs[0] == logs[1] and "NCE" in logs[0].splitlines()[0]

    # gantool evaluate reads the one direction: the classifier's figures, no round trip.
    result = run_cli("evaluate", straight, "--max-images", "8", "-o", tmp_path / "eval")
    assert result.exit_code == 0, result.output
    assert "3->8" in result.output and "8->3" not in result.output
    assert "read as target" in result.output and "cycle L1" not in result.output
    assert (tmp_path / "eval" / "grid.png").is_file()

    onnx_file = tmp_path / f"{name}.onnx"
    result = run_cli("export", "onnx", straight, "-o", onnx_file)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.glob("*.onnx")) == [onnx_file.name]  # a2b only

    three = open_data(cfg, "translation", "test")["a"].load(0)
    Image.fromarray(three).save(tmp_path / "three.png")
    result = run_cli("apply", "--model", onnx_file, tmp_path / "three.png", "-o",
                     tmp_path / "eight.png")
    assert result.exit_code == 0, result.output
    assert np.asarray(Image.open(tmp_path / "eight.png")).shape == three.shape


# -- learning on real digits ----------------------------------------------------------------
def _own_input_found(inputs: np.ndarray, outputs: np.ndarray) -> float:
    """Share of translations whose most correlated input (of all held-out inputs) is their
    own: 1/N by chance, high when a translation keeps its input's layout."""

    def centred(images: np.ndarray) -> np.ndarray:
        flat = images.reshape(len(images), -1).astype(np.float64)
        flat -= flat.mean(axis=1, keepdims=True)
        return flat / (np.linalg.norm(flat, axis=1, keepdims=True) + 1e-8)

    similarity = centred(outputs) @ centred(inputs).T
    return float((similarity.argmax(axis=1) == np.arange(len(inputs))).mean())


def _readings(model: CUT, threes: torch.Tensor) -> tuple[float, float]:
    """Held-out threes translated: the share read as 8, and the share that keep their input."""
    with torch.no_grad():
        eights = to_uint8(model.generators()["a2b"].module(threes))
    gray_in, gray_out = to_uint8(threes).mean(axis=3), eights.mean(axis=3)
    return target_shares(eights, 8)[0], _own_input_found(gray_in, gray_out)


LEARNING = {"ngf": 8, "ndf": 8, "blocks": 2, "num_patches": 64, "head_units": 64}


def learned_readings(tmp_path: Path, **changes: Any) -> tuple[tuple[float, float], tuple[float, float]]:
    """Readings of the untrained model and after a short CUT run on threes -> eights
    (the widths and patch counts small so that it runs in well under a minute)."""
    spec = get_registry().model("cut")
    small = dataclasses.replace(spec.config(size=32, **LEARNING), **changes)
    cfg = TrainConfig(model="cut", data="digits", domain_a="3", domain_b="8", size=32,
                      steps=500, batch_size=4, diffaug="none", out=str(tmp_path / "run"),
                      log_every=100, sample_every=1000, checkpoint_every=1000, workers=0)
    train(cfg, small, progress=False)
    held_out = open_data(cfg, "translation", "test")["a"]
    threes = to_tensor([held_out.load(i) for i in range(len(held_out))])
    torch.manual_seed(0)
    before = _readings(CUT(small).eval(), threes)
    model, _, _ = load_model(tmp_path / "run")
    with open(tmp_path / "run" / "logs" / "losses.csv") as fh:
        assert ("NCE" in next(csv.reader(fh))) == (small.lambda_nce > 0)
    return before, _readings(model, threes)


def test_cut_turns_held_out_threes_into_eights_that_keep_their_shape(tmp_path: Path) -> None:
    # Measured (500 steps, seeds 0, 1, 2; 40 s on two shared cores): untrained 0.00 read
    # as 8, trained 0.97, 0.81, 0.97, each eight most like its own three (of 37) for 0.65,
    # 0.73, 0.76 of them. With PatchNCE off (lambda_nce 0) the adversarial loss alone still
    # makes eights (0.95, 0.95) but of any three: 0.24, 0.19 keep their input, and this
    # test fails.
    (read_before, _), (read_after, kept_after) = learned_readings(tmp_path)
    assert read_after >= read_before + 0.5, (read_before, read_after)
    assert kept_after >= 0.45, kept_after
