"""What a kill or a hostile file leaves behind is tidied up or refused quietly: a loss plot
cut off by a kill is drawn on resume, an unsafe pickle is refused without advice to run it,
and images full of NaN are written without numpy's warnings."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from translator.errors import GantoolError
from translator.training.checkpoint import STATE, load_state

SMALL = ["--size", "32", "--batch-size", "4", "--ngf", "8", "--ndf", "8", "--log-every", "1",
         "--workers", "0", "--sample-every", "1000"]


def _dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_kill_during_the_final_plot_is_repaired_on_resume(run_cli, tmp_path):
    run = tmp_path / "run"
    result = run_cli("train", "dcgan", "--data", "demo", *SMALL, "--steps", "2", "--out", run)
    assert result.exit_code == 0, result.output
    logs = run / "logs"
    # What a kill inside the final plot leaves: the temporary, no losses.png.
    (logs / "losses.png").unlink()
    stale = logs / f".losses.tmp-{_dead_pid()}-0123abcd.png"
    stale.write_bytes(b"\x89PNG half")
    live = logs / f".losses.tmp-{os.getpid()}-0123abcd.png"  # a writer still at work
    live.write_bytes(b"")
    result = run_cli("train", "--resume", run)
    assert result.exit_code == 1 and "already finished" in result.output
    assert not stale.exists() and live.exists()
    with Image.open(logs / "losses.png") as img:
        assert img.size[0] > 100


class Payload:
    def __reduce__(self):
        return os.getpid, ()


def test_an_unsafe_pickle_is_refused_without_suggesting_to_run_it(tmp_path):
    torch.save({"step": 1, "x": Payload()}, tmp_path / STATE)
    with pytest.raises(GantoolError) as caught:
        load_state(tmp_path)
    message = str(caught.value)
    assert "never runs code" in message
    assert "weights_only" not in message and "trusted" not in message


def test_bytes_that_are_no_checkpoint_say_corrupt(tmp_path):
    (tmp_path / STATE).write_bytes(b"garbage" * 10)
    with pytest.raises(GantoolError, match="is corrupt") as caught:
        load_state(tmp_path)
    assert "weights_only" not in str(caught.value)


@pytest.mark.parametrize("fill", [np.nan, np.inf, -np.inf])
def test_a_float_image_with_nan_or_inf_reads_without_warnings(tmp_path, fill):
    from translator.data.images import read_image

    pixels = np.linspace(0, 1, 16, dtype=np.float32).reshape(4, 4)
    pixels[0, :2] = fill
    path = tmp_path / "f.tif"
    Image.fromarray(pixels, "F").save(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rgb = read_image(path)
    assert rgb.shape == (4, 4, 3) and rgb[0, 0, 0] == 0 and rgb[3, 3, 0] == 255


def test_an_all_nan_float_image_reads_as_black_without_warnings(tmp_path):
    from translator.data.images import read_image

    path = tmp_path / "f.tif"
    Image.fromarray(np.full((4, 4), np.nan, np.float32), "F").save(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not read_image(path).any()


def test_a_model_answering_nan_writes_black_without_warnings(tmp_path):
    from runtime_helpers import make_invert_model

    from translator.runtime.apply import apply
    from translator.runtime.options import RuntimeOptions

    model = make_invert_model(tmp_path / "nan.onnx", scale=0.0, offset=float("nan"))
    src = tmp_path / "in" / "a.png"
    src.parent.mkdir()
    Image.fromarray(np.full((8, 8, 3), 90, np.uint8)).save(src)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = apply(model, [src], tmp_path / "out", options=RuntimeOptions(progress=False),
                       log=lambda _m: None)
    assert report.ok
    assert not np.asarray(Image.open(tmp_path / "out" / "a.png")).any()


def test_stale_temporaries_of_live_writers_and_other_files_stay(tmp_path):
    from translator.safe_write import remove_stale_temporaries, temporary_sibling

    mine = temporary_sibling(tmp_path / "x.png")
    mine.write_bytes(b"")
    dead = tmp_path / f".x.tmp-{_dead_pid()}-deadbeef.png"
    dead.write_bytes(b"")
    other = tmp_path / ".notes.tmp-1-zz.txt"
    other.write_bytes(b"")
    assert remove_stale_temporaries(tmp_path) == [dead]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([mine.name, other.name])
    assert remove_stale_temporaries(tmp_path / "missing") == []


def test_a_stale_temporary_pid_too_large_for_the_system_is_left(tmp_path):
    from translator.safe_write import remove_stale_temporaries

    odd = tmp_path / f".x.tmp-{2**80}-deadbeef.png"
    odd.write_bytes(b"")
    assert remove_stale_temporaries(Path(tmp_path)) == []
