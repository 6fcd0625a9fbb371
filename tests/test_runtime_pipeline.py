"""The frame pipeline on real photographs (scikit-image's coffee and chelsea)."""

from __future__ import annotations

import numpy as np
import pytest
from runtime_helpers import make_generator_model, make_invert_model
from skimage import data

from translator.errors import GantoolError
from translator.runtime.pipeline import (
    FramePipeline,
    from_tensor,
    processing_shape,
    resize,
    to_tensor,
)
from translator.runtime.session import ModelInfo, ModelSession


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    path = make_invert_model(tmp_path_factory.mktemp("m") / "invert.onnx")
    return ModelSession(path, provider="cpu")


def _expected_inversion(img: np.ndarray, info: ModelInfo) -> np.ndarray:
    ph, pw = processing_shape(img.shape[0], img.shape[1], info)
    return 255 - resize(resize(img, ph, pw), img.shape[0], img.shape[1]).astype(int)


def test_processing_shape_keeps_aspect_and_multiple():
    from pathlib import Path

    info = ModelInfo(Path("m.onnx"), input_size=64, size_multiple=4)
    assert processing_shape(512, 512, info) == (64, 64)
    assert processing_shape(400, 600, info) == (64, 96)
    h, w = processing_shape(300, 451, info)
    assert h == 64 and w % 4 == 0 and abs(w - 96) <= 4
    # A very long panorama is capped rather than made into a huge tensor.
    h, w = processing_shape(100, 10000, info)
    assert w <= 4 * 64 and h % 4 == 0 and h >= 4


def test_processing_shape_of_fixed_size_model():
    from pathlib import Path

    info = ModelInfo(Path("m.onnx"), input_shape=(1, 3, 32, 48))
    assert processing_shape(400, 600, info) == (32, 48)
    assert info.max_batch == 1


@pytest.mark.parametrize(("rng", "order"), [((-1.0, 1.0), "RGB"), ((0.0, 1.0), "BGR")])
def test_tensor_round_trip_is_exact(rng, order):
    from pathlib import Path

    info = ModelInfo(Path("m.onnx"), input_range=rng, channel_order=order)
    img = data.coffee()[:40, :50]
    t = to_tensor([img, img[::-1]], info)
    assert t.shape == (2, 3, 40, 50) and t.dtype == np.float32
    assert t.min() >= rng[0] - 1e-6 and t.max() <= rng[1] + 1e-6
    back = from_tensor(t, info)
    np.testing.assert_array_equal(back[0], img)
    np.testing.assert_array_equal(back[1], img[::-1])
    if order == "BGR":  # the model sees blue first
        np.testing.assert_allclose(t[0, 0], img[..., 2] / 255.0, atol=1e-6)


@pytest.mark.parametrize("name", ["coffee", "chelsea"])
def test_translate_real_photo_returns_input_size(session, name):
    img = getattr(data, name)()
    out = FramePipeline(session).translate([img])[0]
    assert out.shape == img.shape and out.dtype == np.uint8
    diff = np.abs(out.astype(int) - _expected_inversion(img, session.info))
    assert diff.max() <= 1
    # And the picture really was inverted, not passed through.
    assert np.abs(out.astype(int) - img).mean() > 50


def test_batching_gives_the_same_result(session):
    images = [data.coffee(), data.chelsea(), data.coffee()[::-1].copy()]
    one = FramePipeline(session, batch_size=1).translate(images)
    three = FramePipeline(session, batch_size=3).translate(images)
    for a, b in zip(one, three, strict=True):
        np.testing.assert_array_equal(a, b)


def test_side_by_side(session):
    img = data.chelsea()
    out = FramePipeline(session, side_by_side=True).process([img])[0]
    assert out.shape == (img.shape[0], 2 * img.shape[1], 3)
    np.testing.assert_array_equal(out[:, : img.shape[1]], img)


def test_fixed_size_foreign_model_with_flags(tmp_path):
    # A model that takes exactly [1, 3, 32, 32] in 0..1 and returns 1 - x.
    path = make_invert_model(tmp_path / "f.onnx", None, (1, 3, 32, 32), scale=-1.0, offset=1.0)
    s = ModelSession(path, provider="cpu", input_range="0,1", log=lambda m: None)
    pipe = FramePipeline(s, batch_size=8)
    assert pipe.batch_size == 1
    images = [data.coffee(), data.chelsea()]
    for img, out in zip(images, pipe.translate(images), strict=True):
        expected = 255 - resize(resize(img, 32, 32), *img.shape[:2]).astype(int)
        assert out.shape == img.shape
        assert np.abs(out.astype(int) - expected).max() <= 1


def test_generation_model_is_refused_by_the_image_pipeline(tmp_path):
    s = ModelSession(make_generator_model(tmp_path / "g.onnx"), provider="cpu")
    with pytest.raises(GantoolError, match="generation model"):
        FramePipeline(s)
