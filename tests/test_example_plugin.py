"""The third-party examples in examples/, pip-installed like a user would, then used only
through the command line and the public contract check (translator.testing.check_model)."""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def pip_installed(distribution: str) -> Iterator[None]:
    """Install ``examples/<distribution>`` for the duration; new plugin managers see it."""
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", str(EXAMPLES / distribution)]
    subprocess.run(pip, check=True, capture_output=True)
    importlib.invalidate_caches()
    try:
        yield
    finally:
        subprocess.run([sys.executable, "-m", "pip", "uninstall", "-q", "-y", distribution],
                       check=False, capture_output=True)


@pytest.fixture(scope="module")
def installed_example():
    yield from pip_installed("gantool-hinge")


@pytest.fixture(scope="module")
def installed_stripes():
    yield from pip_installed("gantool-stripes")


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


def test_the_hinge_example_keeps_the_contract(installed_example, fresh_plugins, tmp_path):
    from translator.testing import check_model

    check_model("hinge-gan", tmp_path)


# -- examples/gantool-stripes: a translation model, a data set and a command ----------------
def test_stripes_example_is_listed_with_its_model_data_set_and_command(installed_stripes):
    plugins = gantool("plugins")
    assert plugins.returncode == 0, plugins.stdout + plugins.stderr
    assert "stripes 0.1.0" in plugins.stdout
    assert ("registers: command stripes-preview, model mini-cyclegan, dataset stripes"
            in plugins.stdout)
    help_text = gantool("train", "mini-cyclegan", "--help").stdout
    assert "--decay [linear|none]" in help_text and "--identity / --no-identity" in help_text


def test_stripes_example_trains_exports_and_translates(installed_stripes, tmp_path):
    run = tmp_path / "run"
    result = gantool("train", "mini-cyclegan", "--data", "stripes", "--steps", "4", "--width", "8",
                     "--log-every", "2", "--out", run)
    assert result.returncode == 0, result.stderr
    assert (run / "logs" / "losses.csv").read_text().splitlines()[0] == "step,G,cycle,D"
    assert '"plugin": "stripes"' in (run / "config.json").read_text()

    result = gantool("export", "onnx", run, "-o", tmp_path / "export")
    assert result.returncode == 0, result.stderr
    onnx_file = tmp_path / "export" / "mini-cyclegan-a2b.onnx"
    info = gantool("inspect", onnx_file).stdout
    assert "gantool.size_multiple" in info and "horizontal" in info

    from PIL import Image

    Image.new("RGB", (45, 31), "orange").save(tmp_path / "in.png")
    result = gantool("apply", "--model", onnx_file, tmp_path / "in.png", "-o", tmp_path / "out.png")
    assert result.returncode == 0, result.stderr
    assert Image.open(tmp_path / "out.png").size == (45, 31)

    preview = gantool("stripes-preview", "-o", tmp_path / "preview.png", "-n", "3")
    assert preview.returncode == 0, preview.stderr
    assert Image.open(tmp_path / "preview.png").size == (3 * 48, 2 * 48)


def test_stripes_example_keeps_the_contract(installed_stripes, fresh_plugins, tmp_path):
    from translator.testing import check_model

    check_model("mini-cyclegan", tmp_path, data="stripes", domains=("horizontal", "vertical"))


def test_a_bad_stripes_domain_is_one_clear_line(installed_stripes, tmp_path):
    result = gantool("train", "mini-cyclegan", "--data", "stripes", "--domain-a", "diagonal",
                     "--domain-b", "vertical", "--out", tmp_path / "r")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "Error: the stripes set has domains horizontal and vertical, not 'diagonal'")
