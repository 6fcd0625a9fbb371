"""`gantool translate` (PyTorch, from a checkpoint) and `gantool apply` (ONNX) agree."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

SMALL = ["--size", "32", "--batch-size", "2", "--ngf", "8", "--ndf", "8", "--d-layers", "2"]


@pytest.fixture(scope="module")
def translation_run(tmp_path_factory):
    from click.testing import CliRunner
    from translator.cli import cli

    root = tmp_path_factory.mktemp("translate")
    run = root / "run"
    result = CliRunner().invoke(cli, ["train", "cyclegan-mobile", "--data", "demo", "--steps", "3",
                                      *SMALL, "--out", str(run)])
    assert result.exit_code == 0, result.output
    return run


def test_translate_matches_the_exported_model_within_one_level(run_cli, translation_run, tmp_path):
    from skimage import data

    Image.fromarray(data.astronaut()).save(tmp_path / "astronaut.png")
    onnx_file = tmp_path / "m.onnx"
    result = run_cli("export", "onnx", translation_run, "--direction", "a2b", "-o", onnx_file)
    assert result.exit_code == 0, result.output
    result = run_cli("translate", translation_run, tmp_path / "astronaut.png",
                     "-o", tmp_path / "torch.png", "--no-progress")
    assert result.exit_code == 0, result.output
    result = run_cli("apply", "--model", onnx_file, tmp_path / "astronaut.png",
                     "-o", tmp_path / "onnx.png", "--no-progress")
    assert result.exit_code == 0, result.output
    torch_out = np.asarray(Image.open(tmp_path / "torch.png"), dtype=np.int16)
    onnx_out = np.asarray(Image.open(tmp_path / "onnx.png"), dtype=np.int16)
    assert torch_out.shape == onnx_out.shape == (512, 512, 3)
    assert np.abs(torch_out - onnx_out).max() <= 1
    # The untrained-ish generator still changes the picture: this is no identity copy.
    assert np.abs(torch_out - data.astronaut().astype(np.int16)).mean() > 5


def test_translate_bad_input_is_one_line(run_cli, translation_run, tmp_path):
    result = run_cli("translate", translation_run, tmp_path / "missing.png")
    assert result.exit_code == 1 and "no such file or folder" in result.output
    result = run_cli("translate", tmp_path, tmp_path)
    assert result.exit_code == 1 and "not a run folder" in result.output
    result = run_cli("translate", translation_run, tmp_path, "--checkpoint", "999")
    assert result.exit_code == 1 and "no checkpoint at step 999" in result.output
