"""Outputs never write through what already sits at their path: hard links to inputs,
``cp -al`` trees and symlinks to unrelated files stay untouched."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from runtime_helpers import count_frames, make_invert_model, write_video

from translator.errors import GantoolError
from translator.runtime.apply import apply
from translator.runtime.options import RuntimeOptions
from translator.safe_write import atomic_path, same_file, write_text_atomic


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return make_invert_model(tmp_path_factory.mktemp("model") / "invert.onnx")


def _image(path: Path, value: int = 40) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((24, 32, 3), value, np.uint8)).save(path)
    return path


def test_hardlinked_output_of_an_input_is_refused(tmp_path, model):
    src = _image(tmp_path / "single" / "a.png")
    before = src.read_bytes()
    (tmp_path / "hl").mkdir()
    os.link(src, tmp_path / "hl" / "a.png")
    with pytest.raises(GantoolError, match="same file as the input"):
        apply(model, [src], tmp_path / "hl" / "a.png", options=RuntimeOptions(progress=False),
              log=lambda _m: None)
    assert src.read_bytes() == before


def test_cp_al_tree_as_output_leaves_inputs_alone(tmp_path, model):
    inputs = tmp_path / "in"
    for i in range(3):
        _image(inputs / f"{i}.png", 30 * i)
    before = {p.name: p.read_bytes() for p in inputs.iterdir()}
    subprocess.run(["cp", "-al", str(inputs), str(tmp_path / "out")], check=True)
    with pytest.raises(GantoolError, match="same file as the input"):
        apply(model, [inputs], tmp_path / "out", options=RuntimeOptions(progress=False),
              log=lambda _m: None)
    assert {p.name: p.read_bytes() for p in inputs.iterdir()} == before


def test_a_symlink_in_the_output_folder_is_replaced_not_written_through(tmp_path, model):
    src = _image(tmp_path / "in" / "good1.png")
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "good1.png").symlink_to(Path("..") / "victim.txt")
    report = apply(model, [src.parent], out, options=RuntimeOptions(progress=False), log=lambda _m: None)
    assert report.ok and victim.read_text() == "precious\n"
    assert not (out / "good1.png").is_symlink()
    assert np.asarray(Image.open(out / "good1.png"))[0, 0, 0] == 255 - 40


def test_a_video_output_replaces_a_symlink_and_a_failed_one_leaves_nothing(tmp_path, model):
    clip = write_video(tmp_path / "clip.mp4", frames=6)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    out = tmp_path / "out.mp4"
    out.symlink_to(victim)
    report = apply(model, [clip], out, options=RuntimeOptions(progress=False), log=lambda _m: None)
    assert report.ok and victim.read_text() == "precious\n"
    assert not out.is_symlink() and count_frames(out)[0] == 6
    assert [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name] == []


def test_atomic_path_replaces_links_and_cleans_up_on_failure(tmp_path):
    target = tmp_path / "t.txt"
    other = tmp_path / "other.txt"
    other.write_text("keep")
    os.link(other, target)
    write_text_atomic(target, "new")
    assert other.read_text() == "keep" and target.read_text() == "new"
    assert not same_file(target, other)
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "x.png") as tmp:
        tmp.write_bytes(b"partial")
        raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.txt", "t.txt"]


def test_grids_and_configs_are_written_atomically(tmp_path):
    from translator.imaging import save_image

    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (tmp_path / "grid.png").symlink_to(victim)
    save_image(np.zeros((8, 8, 3), np.uint8), tmp_path / "grid.png")
    assert victim.read_text() == "precious\n"
    assert shutil.which("cp")  # the cp -al test above needs it too


def test_batch_report_names_link_loops_labels_permissions_and_quotes_names(tmp_path, model, monkeypatch):
    from runtime_helpers import invoke

    src = tmp_path / "in"
    _image(src / "ok.png")
    (src / "new\nline.png").write_bytes(b"not an image")
    (src / "loop.png").symlink_to("loop.png")  # a link to itself
    (src / "sub").mkdir()
    (src / "sub" / "up").symlink_to("..", target_is_directory=True)  # a folder loop
    _image(src / "locked.png")
    import translator.data.images as images

    real_open = images.open_capped

    def no_permission(path, *args, **kwargs):
        if str(path).endswith("locked.png"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(images, "open_capped", no_permission)
    result = invoke(["apply", "-m", str(model), str(src), "-o", str(tmp_path / "out"), "--no-progress"])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert any("loop.png" in ln and "link" in ln for ln in lines), result.output
    assert any("up" in ln and "link" in ln for ln in lines), result.output
    assert any("locked.png: permission denied" in ln for ln in lines), result.output
    assert any('"' in ln and "new\\nline.png" in ln for ln in lines), result.output
    assert not any(ln.startswith("line.png") for ln in lines)
