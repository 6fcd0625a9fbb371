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


# -- names from a model's metadata, a config or a data set never steer a path ------------------
EVIL_DOMAIN = "x/../../../PWNED"


@pytest.fixture(scope="module")
def evil_model(tmp_path_factory):
    from runtime_helpers import GANTOOL_META

    meta = {**GANTOOL_META, "gantool.domain_to": EVIL_DOMAIN}
    return make_invert_model(tmp_path_factory.mktemp("evil") / "evil.onnx", metadata=meta)


def _names_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_a_models_domain_name_cannot_move_an_image_output(tmp_path, evil_model):
    src = _image(tmp_path / "a" / "b" / "in" / "a.png")
    report = apply(evil_model, [src], options=RuntimeOptions(progress=False), log=lambda _m: None)
    assert report.ok and report.written == [(src, src.parent / "a_x-PWNED.png")]
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith("PWNED")]


def test_a_models_domain_name_cannot_move_a_folder_output(tmp_path, evil_model):
    src = _image(tmp_path / "a" / "b" / "in" / "a.png")
    report = apply(evil_model, [src.parent], options=RuntimeOptions(progress=False),
                   log=lambda _m: None)
    assert report.ok and report.written == [(src, tmp_path / "a" / "b" / "in_x-PWNED" / "a.png")]
    assert _names_under(tmp_path) == ["a", "a/b", "a/b/in", "a/b/in/a.png", "a/b/in_x-PWNED",
                                      "a/b/in_x-PWNED/a.png"]


def test_the_cli_writes_beside_the_input_whatever_the_metadata_says(tmp_path, evil_model):
    from runtime_helpers import invoke

    src = _image(tmp_path / "a" / "b" / "in" / "a.png")
    result = invoke(["apply", "--model", str(evil_model), str(src)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in src.parent.iterdir()) == ["a.png", "a_x-PWNED.png"]
    assert not [p for p in tmp_path.rglob("*") if "PWNED" in p.name and p.parent != src.parent]


@pytest.mark.parametrize(("name", "safe"), [
    ("x/../../../PWNED", "x-PWNED"), ("..", "translated"), ("/etc/passwd", "etc-passwd"),
    ("..\\..\\windows", "windows"), (".hidden", "hidden"), ("-rf", "rf"), ("a b\tc", "a-b-c"),
    ("männlich", "männlich"), ("\x00\x1b[31m", "31m"), ("", "translated"), ("a" * 300, "a" * 64),
    ("photo.v2", "photo.v2"), ("C:\\x", "C-x"),
])
def test_safe_component_leaves_one_harmless_name(name, safe):
    from translator.safe_write import safe_component

    assert safe_component(name, fallback="translated") == safe


def test_a_linked_folder_inside_the_output_is_refused(tmp_path, model):
    src = _image(tmp_path / "in" / "sub" / "a.png")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "sub").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(GantoolError, match="outside the output folder"):
        apply(model, [src.parent.parent], out, options=RuntimeOptions(progress=False),
              log=lambda _m: None)
    assert list(elsewhere.iterdir()) == []


def test_export_file_names_are_one_component_each(tmp_path):
    from translator.exporters.onnx_export import output_paths

    run = tmp_path / "run"
    paths = output_paths(None, run, "../../evil", ["../../a2b", "b2a"], False)
    assert paths == {"../../a2b": run / "export" / "evil-a2b.onnx",
                     "b2a": run / "export" / "evil-b2a.onnx"}
    pattern = output_paths(tmp_path / "{model}_{direction}.onnx", run, "/m", ["../d"], False)
    assert pattern == {"../d": tmp_path / "m_d.onnx"}


def test_a_default_run_folder_stays_under_its_root(tmp_path):
    from translator.training.runs import default_run_dir

    path = default_run_dir("../../../evil", tmp_path / "runs")
    assert path.parent == tmp_path / "runs" and path.name.startswith("evil-")
    assert default_run_dir("..", tmp_path / "runs").name.startswith("run-")


# -- writers that keep a file open: logs appended to, memory-mapped caches --------------------
def _victim(tmp_path: Path) -> Path:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    return victim


def test_losses_csv_replaces_a_link_planted_before_the_run(tmp_path):
    from translator.training.outputs import LossLog

    victim = _victim(tmp_path)
    path = tmp_path / "logs" / "losses.csv"
    path.parent.mkdir()
    path.symlink_to(victim)
    log = LossLog(path, None)
    log.append(2, {"D": 1.0})
    assert victim.read_text() == "precious\n"
    assert not path.is_symlink() and path.read_text().splitlines() == ["step,D", "2,1"]


def test_losses_csv_on_resume_neither_reads_nor_writes_a_planted_link(tmp_path):
    from translator.training.outputs import LossLog

    victim = tmp_path / "victim.csv"
    victim.write_text("step,secret\n1,42\n")
    path = tmp_path / "losses.csv"
    path.symlink_to(victim)
    log = LossLog(path, 4)
    log.append(6, {"D": 0.5})
    assert victim.read_text() == "step,secret\n1,42\n"
    assert path.read_text().splitlines() == ["step,D", "6,0.5"]


def test_losses_csv_replaces_a_link_planted_during_the_run(tmp_path):
    from translator.training.outputs import LossLog

    victim = _victim(tmp_path)
    path = tmp_path / "losses.csv"
    log = LossLog(path, None)
    log.append(2, {"D": 1.0})
    path.unlink()
    path.symlink_to(victim)
    log.append(4, {"D": 0.5})
    assert victim.read_text() == "precious\n"
    # The link's target was never ours: the log starts again, header first.
    assert not path.is_symlink() and path.read_text().splitlines() == ["step,D", "4,0.5"]


def test_losses_csv_does_not_append_through_a_hard_link(tmp_path):
    from translator.training.outputs import LossLog

    path = tmp_path / "losses.csv"
    log = LossLog(path, None)
    log.append(2, {"D": 1.0})
    backup = tmp_path / "backup.csv"
    os.link(path, backup)  # what `cp -al run run-backup` makes
    log.append(4, {"D": 0.5})
    assert backup.read_text().splitlines() == ["step,D", "2,1"]
    assert path.read_text().splitlines() == ["step,D", "2,1", "4,0.5"]


def _cache_domains(tmp_path: Path):
    from translator.config import TrainConfig
    from translator.data.datasets import open_data

    for i in range(3):
        _image(tmp_path / "imgs" / f"{i}.png", 50 * i)
    return open_data(TrainConfig(data=str(tmp_path / "imgs")), "generation")


@pytest.mark.parametrize("link", ["symlink", "hardlink"])
def test_the_decode_cache_replaces_links_planted_at_its_files(tmp_path, link):
    from translator.data.pipeline import StepBatches, create_caches

    domains = _cache_domains(tmp_path)
    folder = tmp_path / "cache"
    create_caches(domains, folder, 16, "crop-flip")
    victims = {}
    for path in sorted(folder.iterdir()):
        # A file of the very shape the cache wants: reused in place before this fix.
        victim = tmp_path / f"victim-{path.name}"
        shutil.copy(path, victim)
        path.unlink()
        path.symlink_to(victim) if link == "symlink" else os.link(victim, path)
        victims[victim] = victim.read_bytes()
    caches = create_caches(domains, folder, 16, "crop-flip")
    batches = StepBatches(domains, 3, 16, "crop-flip", seed=1, total_steps=1, caches=caches)
    batches[0]
    assert caches["images"].filled.all()
    assert all(v.read_bytes() == before for v, before in victims.items())
    assert not any(p.is_symlink() or p.stat().st_nlink > 1 for p in folder.iterdir())


def test_a_damaged_decode_cache_is_made_again(tmp_path):
    from translator.data.pipeline import create_caches

    domains = _cache_domains(tmp_path)
    folder = tmp_path / "cache"
    create_caches(domains, folder, 16, "crop-flip")
    for path in folder.iterdir():
        path.write_bytes(b"not an npy file")
    caches = create_caches(domains, folder, 16, "crop-flip")
    assert not caches["images"].filled.any()
