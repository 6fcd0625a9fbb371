"""Image decoding, data layouts (CelebA, folders), and the step-indexed batches."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from translator.config import TrainConfig
from translator.data import ImageList
from translator.data.datasets import open_data
from translator.data.images import ImageReadError, read_image, scan_images
from translator.data.pipeline import Augmentation, StepBatches, prepare
from translator.errors import GantoolError


def _save(path: Path, img: Image.Image, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, **kw)
    return path


def test_read_image_converts_every_mode_to_rgb(tmp_path):
    rgb = Image.new("RGB", (20, 10), (200, 30, 40))
    cases = {
        "gray.png": rgb.convert("L"),
        "palette.png": rgb.convert("P"),
        "cmyk.jpg": rgb.convert("CMYK"),
        "rgba.png": Image.new("RGBA", (20, 10), (200, 30, 40, 0)),
        "sixteen.png": Image.fromarray(np.full((10, 20), 65535, np.uint16)),
    }
    for name, img in cases.items():
        arr = read_image(_save(tmp_path / name, img))
        assert arr.shape == (10, 20, 3) and arr.dtype == np.uint8, name
    # Fully transparent pixels are composited on white; 16-bit white stays white.
    assert (read_image(tmp_path / "rgba.png") == 255).all()
    assert (read_image(tmp_path / "sixteen.png") == 255).all()


def test_read_image_applies_exif_orientation(tmp_path):
    img = Image.new("RGB", (30, 10), (0, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    _save(tmp_path / "rotated.jpg", img, exif=exif)
    assert read_image(tmp_path / "rotated.jpg").shape == (30, 10, 3)


@pytest.mark.parametrize(
    "content, reason",
    [
        (b"", "empty file"),
        (b"this is text, not pixels", "not an image"),
    ],
)
def test_unreadable_files_say_why(tmp_path, content, reason):
    path = tmp_path / "bad.png"
    path.write_bytes(content)
    with pytest.raises(ImageReadError, match=reason):
        read_image(path)


def test_truncated_jpeg_is_reported(tmp_path):
    good = _save(
        tmp_path / "good.jpg",
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)),
    )
    data = good.read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 3])
    with pytest.raises(ImageReadError, match="truncated"):
        read_image(tmp_path / "cut.jpg")


def test_scan_skips_bad_files_and_names_them(tmp_path):
    _save(tmp_path / "a" / "one.png", Image.new("RGB", (8, 8)))
    (tmp_path / "a" / "zero.png").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("hello")
    scan = scan_images(tmp_path)
    assert [p.name for p in scan.paths] == ["one.png"]
    assert "zero.png (empty file)" in scan.describe_skipped()


def write_tiny_celeba(root: Path, partition: bool = True) -> dict[str, set[str]]:
    """A CelebA-shaped folder: 8 images, attributes Male and Eyeglasses (+ Smiling)."""
    columns = ["Eyeglasses", "Male", "Smiling"]
    rows = {
        "000001.jpg": [1, 1, -1],
        "000002.jpg": [-1, -1, 1],
        "000003.jpg": [-1, 1, 1],
        "000004.jpg": [1, -1, -1],
        "000005.jpg": [-1, 1, -1],
        "000006.jpg": [-1, -1, -1],
        "000007.jpg": [1, 1, 1],
        "000008.jpg": [-1, -1, 1],
    }
    for i, name in enumerate(rows):
        _save(root / "img_align_celeba" / name, Image.new("RGB", (178, 218), (i * 30, 50, 90)))
    lines = [str(len(rows)), " ".join(columns)]
    lines += [f"{name}  " + " ".join(f"{v:2d}" for v in values) for name, values in rows.items()]
    (root / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    if partition:
        (root / "list_eval_partition.txt").write_text(
            "".join(f"{n} {2 if n == '000008.jpg' else 0}\n" for n in rows)
        )
    return {
        "male": {n for n, v in rows.items() if v[1] == 1},
        "female": {n for n, v in rows.items() if v[1] == -1 and n != "000008.jpg"},
    }


def _file_names(images: ImageList) -> list[str]:
    """The names of the files a list reads (in-memory images have none)."""
    return [item.name for item in images.items if isinstance(item, Path)]


def test_celeba_domains_get_exactly_the_right_files(tmp_path):
    expected = write_tiny_celeba(tmp_path)
    cfg = TrainConfig(data=str(tmp_path), domain_a="male", domain_b="female")
    domains = open_data(cfg, "translation")
    assert set(_file_names(domains["a"])) == expected["male"]
    # 000008 is a test image (partition 2) and stays out of training.
    assert set(_file_names(domains["b"])) == expected["female"]
    test = open_data(cfg, "translation", "test")
    assert _file_names(test["b"]) == ["000008.jpg"]


def test_celeba_attr_syntax_and_unknown_words(tmp_path):
    write_tiny_celeba(tmp_path, partition=False)
    cfg = TrainConfig(data=str(tmp_path), domain_a="attr:Smiling", domain_b="attr:-Smiling")
    domains = open_data(cfg, "translation")
    assert set(_file_names(domains["a"])) == {"000002.jpg", "000003.jpg", "000007.jpg", "000008.jpg"}
    with pytest.raises(GantoolError, match="'wizard' is not a CelebA domain word; known: male"):
        open_data(TrainConfig(data=str(tmp_path), domain_a="wizard", domain_b="male"), "translation")
    with pytest.raises(GantoolError, match="no attribute 'Hat'"):
        open_data(TrainConfig(data=str(tmp_path), domain_a="attr:Hat", domain_b="male"), "translation")


def test_folder_layouts(tmp_path):
    for sub in ("trainA", "trainB"):
        for i in range(3):
            _save(tmp_path / "cg" / sub / f"{i}.png", Image.new("RGB", (16, 16)))
    domains = open_data(TrainConfig(data=str(tmp_path / "cg")), "translation")
    assert [len(d) for d in domains.values()] == [3, 3]

    _save(tmp_path / "dom" / "cats" / "1.png", Image.new("RGB", (16, 16)))
    _save(tmp_path / "dom" / "dogs" / "1.png", Image.new("RGB", (16, 16)))
    domains = open_data(
        TrainConfig(data=str(tmp_path / "dom"), domain_a="dogs", domain_b="cats"), "translation"
    )
    assert domains["a"].name == "dogs"

    (tmp_path / "dom" / "birds").mkdir()
    with pytest.raises(GantoolError, match="domain 'birds' has no readable images"):
        open_data(TrainConfig(data=str(tmp_path / "dom"), domain_a="birds", domain_b="cats"), "translation")

    _save(tmp_path / "flat" / "1.png", Image.new("RGB", (16, 16)))
    with pytest.raises(GantoolError, match="does not hold two domains"):
        open_data(TrainConfig(data=str(tmp_path / "flat")), "translation")


def test_missing_and_empty_data_are_clear(tmp_path):
    with pytest.raises(GantoolError, match="no such folder or built-in set"):
        open_data(TrainConfig(data=str(tmp_path / "nope")), "generation")
    (tmp_path / "empty").mkdir()
    with pytest.raises(GantoolError, match="no readable images"):
        open_data(TrainConfig(data=str(tmp_path / "empty")), "generation")


def test_digits_are_real_and_split_by_domain():
    domains = open_data(TrainConfig(data="digits", domain_a="6", domain_b="9"), "translation")
    assert 100 < len(domains["a"]) < 181 and 100 < len(domains["b"]) < 181
    six = domains["a"].load(0)
    assert six.shape == (32, 32, 3) and six.max() > 200 and six.min() < 30


def test_step_batches_survive_the_pickling_that_loader_workers_do():
    domains = open_data(TrainConfig(data="digits", domain_a="6", domain_b="9"), "translation")
    batches = StepBatches(domains, 4, 32, "crop-flip", seed=3, total_steps=10, rank=1, world_size=2)
    copy = pickle.loads(pickle.dumps(batches))
    assert copy.augment == Augmentation("resize-and-crop", flip=True) and len(copy) == 10
    assert all((copy[5][k] == batches[5][k]).all() for k in ("a", "b"))


def test_step_batches_are_a_function_of_the_step_and_ranks_do_not_overlap():
    domains = open_data(TrainConfig(data="digits", domain_a="6", domain_b="9"), "translation")
    one = StepBatches(domains, 4, 32, "crop-flip", seed=3, total_steps=10)
    again = StepBatches(domains, 4, 32, "crop-flip", seed=3, total_steps=10)
    assert all((one[5][k] == again[5][k]).all() for k in ("a", "b"))
    assert not (one[5]["a"] == one[6]["a"]).all()
    ranks = [StepBatches(domains, 4, 32, "crop-flip", 3, 10, rank=r, world_size=2) for r in (0, 1)]
    picked = [set(r.indices(0, 0, len(domains["a"]))) for r in ranks]
    assert not picked[0] & picked[1]
    # Over one epoch every image of a domain is used exactly once.
    n = len(domains["a"])
    steps = n // 4
    used = [i for s in range(steps) for i in one.indices(s, 0, n)]
    assert len(set(used)) == len(used) == steps * 4


def test_crop_flip_keeps_size_and_varies():
    img = np.random.default_rng(0).integers(0, 255, (50, 70, 3), dtype=np.uint8)
    a = prepare(img, 32, "crop-flip", np.random.default_rng(1))
    b = prepare(img, 32, "crop-flip", np.random.default_rng(2))
    assert a.shape == b.shape == (32, 32, 3) and not np.array_equal(a, b)
    assert prepare(img, 32, "resize").shape == (32, 32, 3)


def test_decode_cache_gives_the_same_batches_and_spares_decoding(tmp_path):
    from translator.data.pipeline import create_caches

    rng = np.random.default_rng(0)
    for i in range(6):
        img = rng.integers(0, 255, (40 + i, 50, 3), dtype=np.uint8)
        _save(tmp_path / "imgs" / f"{i}.png", Image.fromarray(img))
    domains = open_data(TrainConfig(data=str(tmp_path / "imgs")), "generation")
    plain = StepBatches(domains, 3, 16, "crop-flip", seed=1, total_steps=4)
    caches = create_caches(domains, tmp_path / "cache", 16, "crop-flip")
    cached = StepBatches(domains, 3, 16, "crop-flip", seed=1, total_steps=4, caches=caches)
    expected = [plain[s]["images"] for s in range(4)]
    for s in range(2):  # one epoch: every image decoded once, into the cache
        assert torch.equal(cached[s]["images"], expected[s])
    assert caches["images"].filled.all()
    for path in (tmp_path / "imgs").iterdir():
        path.write_bytes(b"")  # from now on, decoding would fail
    for s in range(4):
        assert torch.equal(cached[s]["images"], expected[s])
    # A second StepBatches (a resumed run) reopens the same files.
    reopened = create_caches(domains, tmp_path / "cache", 16, "crop-flip")
    assert reopened["images"].filled.all()


def test_train_cyclegan_on_a_tiny_celeba_folder(run_cli, tmp_path):
    import json

    expected = write_tiny_celeba(tmp_path / "celeba")
    run = tmp_path / "run"
    result = run_cli("train", "cyclegan", "--data", tmp_path / "celeba", "--domain-a", "male",
                     "--domain-b", "female", "--size", "64", "--steps", "2", "--ngf", "8",
                     "--ndf", "8", "--blocks", "1", "--workers", "0", "--out", run)
    assert result.exit_code == 0, result.output
    data = json.loads((run / "config.json").read_text())["data"]
    assert data["a"]["name"] == "male" and data["a"]["images"] == len(expected["male"])
    assert data["b"]["name"] == "female" and data["b"]["images"] == len(expected["female"])
    assert (run / "samples" / "step-0000002.png").is_file()
    result = run_cli("train", "cyclegan", "--data", tmp_path / "celeba", "--domain-a", "elf",
                     "--domain-b", "female", "--steps", "1", "--out", tmp_path / "r2")
    assert result.exit_code == 1 and "'elf' is not a CelebA domain word; known: male" in result.output
