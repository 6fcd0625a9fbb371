"""The third-party example in examples/gantool-hinge, pip-installed like a user would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "gantool-hinge"


@pytest.fixture(scope="module")
def installed_example():
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", str(EXAMPLE)]
    subprocess.run(pip, check=True, capture_output=True)
    try:
        yield
    finally:
        subprocess.run([sys.executable, "-m", "pip", "uninstall", "-q", "-y", "gantool-hinge"],
                       check=False, capture_output=True)


def gantool(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "translator.cli", *map(str, args)],
                          capture_output=True, text=True)


def test_example_plugin_is_listed_and_trains(installed_example, tmp_path):
    plugins = gantool("plugins")
    assert "hinge 0.1.0" in plugins.stdout and "registers: model hinge-gan" in plugins.stdout
    models = gantool("models")
    assert "hinge-gan" in models.stdout and "[hinge]" in models.stdout
    run = tmp_path / "run"
    result = gantool("train", "hinge-gan", "--data", "digits", "--steps", "4", "--batch-size", "8",
                     "--width", "16", "--log-every", "2", "--out", run)
    assert result.returncode == 0, result.stderr
    rows = (run / "logs" / "losses.csv").read_text().splitlines()
    assert rows[0] == "step,D,G" and len(rows) == 3
    assert (run / "samples" / "step-0000004.png").is_file()
    config = (run / "config.json").read_text()
    assert '"plugin": "hinge"' in config and '"plugin_version": "0.1.0"' in config

    # The third party's model leaves the run like a built-in one: exported, verified
    # against PyTorch by the exporter, then sampled by the onnxruntime runtime.
    onnx_file = tmp_path / "hinge.onnx"
    result = gantool("export", "onnx", run, "-o", onnx_file)
    assert result.returncode == 0, result.stderr
    result = gantool("inspect", onnx_file)
    assert "gantool.model" in result.stdout and "hinge-gan" in result.stdout
    result = gantool("sample", "--model", onnx_file, "-n", "9", "-o", tmp_path / "grid.png")
    assert result.returncode == 0, result.stderr
    from PIL import Image

    width, height = Image.open(tmp_path / "grid.png").size
    assert width >= 3 * 32 and height >= 3 * 32  # 9 samples of 32 px, three to a row


def test_a_plugin_flag_out_of_range_is_a_clear_error(installed_example, tmp_path):
    result = gantool("train", "hinge-gan", "--data", "digits", "--size", "128", "--out",
                     tmp_path / "r")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == "Error: hinge-gan trains at 32 or 64 px, not 128"
