"""The one generation path: ``sample_grid`` for exported models and runs, ``make_grid``."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from runtime_helpers import make_generator_model, make_invert_model

from translator.errors import GantoolError
from translator.imaging import make_grid
from translator.runtime.generate import sample_grid


@pytest.fixture(scope="module")
def generator(tmp_path_factory):
    return make_generator_model(tmp_path_factory.mktemp("g") / "G.onnx", latent_dim=8, size=8)


def _expected_first_image(latent_dim: int, size: int, seed: int) -> np.ndarray:
    # What the helper's generator computes for the first noise vector of ``seed``.
    w = np.random.default_rng(1).standard_normal((latent_dim, 3 * size * size)).astype(np.float32)
    z = np.random.default_rng(seed).standard_normal((1, latent_dim)).astype(np.float32)
    img = np.tanh(z @ w).reshape(3, size, size).transpose(1, 2, 0)
    return np.clip(np.rint((img + 1) * 127.5), 0, 255).astype(np.uint8)


def test_sample_grid_layout_and_content(tmp_path, generator):
    out = sample_grid(generator, 5, tmp_path / "grid.png", seed=3, provider="cpu", log=lambda m: None)
    assert out == tmp_path / "grid.png"
    grid = np.asarray(Image.open(out))
    # 5 images -> 3 columns x 2 rows of 8 px tiles, enlarged 8x to 64 px, 2 px padding.
    assert grid.shape == (2 * 64 + 3 * 2, 3 * 64 + 4 * 2, 3)
    first = grid[2:66:8, 2:66:8]
    assert np.abs(first.astype(int) - _expected_first_image(8, 8, 3)).max() <= 1
    assert (grid[68:132, 134:198] == 255).all()  # the sixth cell is empty padding


def test_dcgan_style_latent_input(tmp_path):
    g = make_generator_model(tmp_path / "G4.onnx", latent_dim=8, size=8, dcgan_input=True)
    out = sample_grid(g, 1, tmp_path / "one.png", seed=3, provider="cpu", log=lambda m: None)
    tile = np.asarray(Image.open(out))[2:66:8, 2:66:8]
    assert np.abs(tile.astype(int) - _expected_first_image(8, 8, 3)).max() <= 1


def test_same_seed_same_grid(tmp_path, generator):
    a = sample_grid(generator, 4, tmp_path / "a.png", seed=7, provider="cpu", log=lambda m: None)
    b = sample_grid(generator, 4, tmp_path / "b", seed=7, provider="cpu", log=lambda m: None)
    c = sample_grid(generator, 4, tmp_path / "c.png", seed=8, provider="cpu", log=lambda m: None)
    assert b.suffix == ".png"
    load = lambda p: np.asarray(Image.open(p))  # noqa: E731
    np.testing.assert_array_equal(load(a), load(b))
    assert not np.array_equal(load(a), load(c))


def test_sample_grid_errors(tmp_path, generator):
    with pytest.raises(GantoolError, match="translation model"):
        sample_grid(make_invert_model(tmp_path / "t.onnx"), 4, tmp_path / "x.png", provider="cpu")
    with pytest.raises(GantoolError, match="at least 1"):
        sample_grid(generator, 0, tmp_path / "x.png", provider="cpu")
    with pytest.raises(GantoolError, match="is a folder"):
        sample_grid(generator, 2, tmp_path, provider="cpu")
    with pytest.raises(GantoolError, match="model file not found"):
        sample_grid(tmp_path / "missing.onnx", 2, tmp_path / "x.png", provider="cpu")


def test_make_grid_columns():
    tiles = [np.full((4, 6, 3), i * 40, np.uint8) for i in range(6)]
    grid = make_grid(tiles, nrow=2, pad=1)
    assert grid.shape == (3 * 4 + 4, 2 * 6 + 3, 3)
    assert (grid[1:5, 8:14] == 40).all()


def test_a_run_and_its_exported_model_sample_the_same_grid(run_cli, tmp_path):
    """One generation path: the checkpoint (PyTorch) and the ONNX export draw the same
    noise for a seed and tile it the same way, so their grids agree to rounding."""
    run = tmp_path / "run"
    result = run_cli("train", "dcgan", "--data", "demo", "--steps", "2", "--size", "32",
                     "--batch-size", "4", "--workers", "0", "--out", run)
    assert result.exit_code == 0, result.output
    assert run_cli("export", "onnx", run, "-o", tmp_path / "g.onnx").exit_code == 0
    from_run, from_onnx, other_seed = tmp_path / "r.png", tmp_path / "o.png", tmp_path / "s.png"
    assert run_cli("sample", run, "-n", "6", "--seed", "5", "-o", from_run).exit_code == 0
    assert run_cli("sample", "-m", tmp_path / "g.onnx", "-n", "6", "--seed", "5",
                   "-o", from_onnx).exit_code == 0  # -m, as apply, webcam and serve take it
    assert run_cli("sample", run, "-n", "6", "--seed", "6", "-o", other_seed).exit_code == 0
    a, b, c = (np.asarray(Image.open(p)).astype(int) for p in (from_run, from_onnx, other_seed))
    assert a.shape == b.shape == (2 * 66 + 2, 3 * 66 + 2, 3)
    assert np.abs(a - b).max() <= 1
    assert np.abs(a - c).max() > 2  # the seed matters, so the agreement above means something
