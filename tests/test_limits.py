"""Memory has a ceiling wherever a size comes from a file or a flag: model metadata and
``--size`` are checked against sane ranges, and the pixel cap acts for every reader."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from runtime_helpers import (
    GANTOOL_META,
    fake_size_png,
    invoke,
    make_generator_model,
    make_invert_model,
    write_video,
)

from translator.data.images import ImageReadError, read_image
from translator.errors import GantoolError
from translator.runtime.options import RuntimeOptions
from translator.runtime.session import ModelSession


def _quiet(_message: str) -> None:
    pass


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("gantool.input_size", "6000", "input_size must be"),
        ("gantool.input_size", "100000", "input_size must be"),
        ("gantool.input_size", "-5", "input_size must be"),
        ("gantool.size_multiple", "0", "size_multiple must be"),
        ("gantool.size_multiple", "-3", "size_multiple must be"),
        ("gantool.input_range", "0,inf", "input_range"),
        ("gantool.input_range", "nan,1", "input_range"),
    ],
)
def test_metadata_out_of_range_is_one_clear_error(tmp_path, key, value, message):
    path = make_invert_model(tmp_path / "m.onnx", {**GANTOOL_META, key: value})
    with pytest.raises(GantoolError, match=message):
        ModelSession(path, "cpu", log=_quiet)
    result = invoke(["apply", "-m", str(path), str(tmp_path), "-o", str(tmp_path / "o")])
    assert result.exit_code == 1 and "Error:" in result.output and message in result.output


@pytest.mark.parametrize("size", [6000, 100000])
def test_size_flag_has_a_ceiling(tmp_path, size):
    path = make_invert_model(tmp_path / "m.onnx")
    with pytest.raises(GantoolError, match="--size"):
        ModelSession(path, "cpu", size=size, log=_quiet)
    result = invoke(["webcam", "-m", str(path), "--size", str(size), "--no-window", "--source",
                     str(write_video(tmp_path / "c.mp4", frames=2))])
    assert result.exit_code != 0 and "Traceback" not in result.output


@pytest.mark.parametrize("latent", ["-5", "100000000"])
def test_sample_with_a_bad_latent_dim_is_one_line(tmp_path, latent):
    import onnx

    path = make_generator_model(tmp_path / "g.onnx")
    model = onnx.load(str(path))
    for prop in model.metadata_props:
        if prop.key == "gantool.latent_dim":
            prop.value = latent
    onnx.save(model, str(path))
    result = invoke(["sample", "--model", str(path), "-n", "2", "-o", str(tmp_path / "g.png")])
    assert result.exit_code == 1 and "latent_dim must be" in result.output


def test_model_whose_output_is_not_an_image_is_refused_in_webcam(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, "H", "W"])
    y = helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N", 3])
    node = helper.make_node("ReduceMean", ["image", "axes"], ["score"], keepdims=0)
    axes = helper.make_tensor("axes", TensorProto.INT64, [2], [2, 3])
    graph = helper.make_graph([node], "score", [x], [y], initializer=[axes])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 10
    helper.set_model_props(model, GANTOOL_META)
    onnx.save(model, str(tmp_path / "score.onnx"))
    clip = write_video(tmp_path / "c.mp4", frames=2)
    result = invoke(["webcam", "-m", str(tmp_path / "score.onnx"), "--source", str(clip),
                     "--no-window", "--max-frames", "2"])
    assert result.exit_code == 1 and "not an image" in result.output


def test_pixel_cap_refuses_before_decoding_and_without_a_pillow_warning(tmp_path, recwarn):
    bomb = fake_size_png(tmp_path / "bomb.png", 12000, 12000)  # 144 Mpx: under Pillow's error
    with pytest.raises(ImageReadError, match="too large"):
        read_image(bomb)
    assert not [w for w in recwarn if "DecompressionBomb" in type(w.message).__name__]


def test_pixel_cap_is_configurable_and_acts_in_apply(tmp_path, monkeypatch):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(np.zeros((40, 50, 3), np.uint8)).save(src / "small.png")
    model = make_invert_model(tmp_path / "m.onnx")
    monkeypatch.setenv("GANTOOL_MAX_PIXELS", "1000")
    result = invoke(["apply", "-m", str(model), str(src), "-o", str(tmp_path / "out"), "--no-progress"])
    assert result.exit_code == 1 and "small.png: too large" in result.output
    monkeypatch.setenv("GANTOOL_MAX_PIXELS", "lots")
    result = invoke(["apply", "-m", str(model), str(src), "-o", str(tmp_path / "out")])
    assert result.exit_code == 1 and "GANTOOL_MAX_PIXELS" in result.output


def test_serve_refuses_an_upload_over_the_cap_with_413(tmp_path):
    from translator.serve.service import ServeError, decode_upload

    data = fake_size_png(tmp_path / "b.png", 12000, 12000).read_bytes()
    with pytest.raises(ServeError) as caught:
        decode_upload(data)
    assert caught.value.status == 413


def test_pixel_cap_acts_on_video_frames(tmp_path, monkeypatch):
    from translator.runtime.apply import apply

    clip = write_video(tmp_path / "clip.mp4", frames=3, size=(96, 64))
    monkeypatch.setenv("GANTOOL_MAX_PIXELS", str(96 * 64 - 1))
    report = apply(make_invert_model(tmp_path / "m.onnx"), [clip], tmp_path / "out.mp4",
                   options=RuntimeOptions(progress=False), log=_quiet)
    assert [why for _, why in report.failed] == [
        f"video clip.mp4 is too large (96x64 = {96 * 64:,} pixels a frame; the limit is "
        f"{96 * 64 - 1:,}, set by GANTOOL_MAX_PIXELS)"]
    assert not (tmp_path / "out.mp4").exists()


def test_an_ico_container_is_refused_from_its_header(tmp_path):
    from PIL import Image

    from translator.data.images import ImageReadError, read_image

    # An icon's directory says at most 256x256 whatever PNG it embeds, so the pixel cap
    # cannot act before decoding: such files are refused, whatever their name.
    path = tmp_path / "icon.png"
    Image.new("RGB", (64, 64), (10, 20, 30)).save(path, format="ICO")
    with pytest.raises(ImageReadError, match="ICO files are not read"):
        read_image(path)


def test_a_fixed_input_shape_beyond_the_sane_range_is_refused_on_opening(tmp_path):
    from runtime_helpers import make_invert_model

    from translator.runtime.session import ModelSession

    path = make_invert_model(tmp_path / "huge.onnx", shape=(1, 3, 60000, 60000))
    with pytest.raises(GantoolError, match="fixed input shape"):
        ModelSession(path, "cpu")
