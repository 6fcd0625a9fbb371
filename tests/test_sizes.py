"""Sizes a model cannot take are refused before anything is written; sizes that are
changed say what is used and why."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from runtime_helpers import GANTOOL_META, make_invert_model

from translator.runtime.session import ModelSession


@pytest.mark.parametrize(("model", "size", "multiple", "hint"), [
    ("cyclegan", "66", "4", "--size 64 or 68"),
    ("cyclegan-unet", "100", "32", "--size 96 or 128"),
])
def test_a_training_size_off_the_multiple_is_refused_before_any_file(run_cli, tmp_path, model, size,
                                                                     multiple, hint):
    out = tmp_path / "run"
    result = run_cli("train", model, "--data", "demo", "--size", size, "--steps", "1", "--out", out)
    assert result.exit_code == 1
    assert f"multiples of {multiple}; use {hint}" in result.output
    assert "Traceback" not in result.output
    assert not out.exists()


def test_a_size_the_model_refuses_at_build_leaves_no_cache(run_cli, tmp_path):
    out = tmp_path / "run"
    result = run_cli("train", "dcgan", "--data", "digits", "--size", "30", "--steps", "1",
                     "--out", out)
    assert result.exit_code == 1 and "Error:" in result.output
    assert not out.exists()


def test_a_processing_size_rounded_to_the_multiple_is_said(tmp_path):
    notes: list[str] = []
    session = ModelSession(make_invert_model(tmp_path / "m.onnx"), "cpu", size=66, log=notes.append)
    assert session.info.processing_size == 64
    assert session.info.describe().endswith("at 64px")
    assert any("66px is not a multiple of 4" in n and "running at 64px" in n for n in notes)
    quiet: list[str] = []
    ModelSession(make_invert_model(tmp_path / "q.onnx"), "cpu", size=68, log=quiet.append)
    assert not any("running at" in n for n in quiet)


def test_a_fixed_size_model_says_it_ignores_the_size_asked(tmp_path):
    notes: list[str] = []
    path = make_invert_model(tmp_path / "f.onnx", {**GANTOOL_META, "gantool.input_size": "128"},
                             shape=(1, 3, 128, 128))
    session = ModelSession(path, "cpu", size=100, log=notes.append)
    assert session.info.processing_size == 128
    assert any("only takes 128x128: running at 128px" in n for n in notes)


def test_apply_prints_the_size_it_really_uses(run_cli, tmp_path):
    image = tmp_path / "in.png"
    cv2.imwrite(str(image), np.full((40, 40, 3), 100, np.uint8))
    result = run_cli("apply", "--model", make_invert_model(tmp_path / "m.onnx"), image,
                     "--size", "66", "-o", tmp_path / "out.png")
    assert result.exit_code == 0, result.output
    assert "running at 64px" in result.output and "at 66px" not in result.output


@pytest.mark.parametrize(("args", "words"), [
    (["--size", "100000"], "between 8 and 4096"),
    (["--batch-size", "100000000"], "between 1 and 65536"),
    (["--batch-size", "4096", "--size", "1024"], "pixels a step"),
])
def test_a_batch_that_cannot_fit_is_refused_up_front(run_cli, tmp_path, args, words):
    out = tmp_path / "run"
    result = run_cli("train", "cyclegan", "--data", "demo", *args, "--steps", "1", "--out", out)
    assert result.exit_code != 0 and words in result.output
    assert "Traceback" not in result.output and not out.exists()


def test_a_data_folder_with_unreadable_entries_is_one_line(run_cli, tmp_path):
    import os
    from pathlib import Path

    if os.geteuid() != 0 and not Path("/proc/1/cwd").exists():
        pytest.skip("needs /proc")
    result = run_cli("train", "cyclegan", "--data", "/proc", "--steps", "1", "--out", tmp_path / "r")
    assert result.exit_code == 1
    assert "permission denied" in result.output or "no data format" in result.output \
        or "no readable images" in result.output
    assert "Traceback" not in result.output


class ShapeSpy:
    """An open model that records the shape of every batch it is given (and inverts)."""

    def __init__(self, path) -> None:
        self.session = ModelSession(path, "cpu", log=lambda _: None)
        self.info, self.provider = self.session.info, self.session.provider
        self.shapes: list[tuple[int, int]] = []

    @property
    def provider_name(self) -> str:
        return self.session.provider_name

    def run(self, batch: np.ndarray) -> np.ndarray:
        self.shapes.append(batch.shape[2:])
        return self.session.run(batch)


@pytest.mark.parametrize(("height", "width", "size", "expected"), [
    (96, 130, None, (96, 128)),       # its own size, rounded to the multiple of 4
    (2048, 3072, None, (1024, 1536)),  # the short side capped at 1024
    (32, 32, None, (64, 64)),         # never below the training size (64)
    (96, 130, 64, (64, 88)),          # --size: that size
])
def test_apply_runs_whole_images_at_their_own_size_by_default(tmp_path, height, width, size,
                                                               expected):
    from translator.runtime.apply import apply
    from translator.runtime.options import RuntimeOptions

    cv2.imwrite(str(tmp_path / "in.png"), np.full((height, width, 3), 90, np.uint8))
    spy = ShapeSpy(make_invert_model(tmp_path / "m.onnx"))
    logged: list[str] = []
    report = apply(spy, [tmp_path / "in.png"], tmp_path / "out.png",
                   RuntimeOptions(size=size, progress=False), log=logged.append)
    assert not report.failed and spy.shapes == [expected]
    written = cv2.imread(str(tmp_path / "out.png"))
    assert written is not None and written.shape[:2] == (height, width)
    own = "whole images run at their own size, short side 64 to 1024px"
    assert (own in logged[0]) == (size is None), logged
