"""Opening models: metadata, flags for foreign models, providers, and errors for bad files."""

from __future__ import annotations

import numpy as np
import pytest
from runtime_helpers import GANTOOL_META, make_generator_model, make_invert_model

from translator.errors import GantoolError
from translator.runtime.session import ModelSession, parse_range


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    return {
        "invert": make_invert_model(d / "invert.onnx"),
        "bare": make_invert_model(d / "bare.onnx", metadata=None),
        "gen": make_generator_model(d / "gen.onnx", latent_dim=8),
        "gray": make_invert_model(d / "gray.onnx", shape=("N", 1, "H", "W")),
    }


def test_metadata_is_read_without_flags(models):
    logs: list[str] = []
    s = ModelSession(models["invert"], provider="cpu", log=logs.append)
    info = s.info
    assert info.from_metadata and info.kind == "translation"
    assert (info.input_size, info.size_multiple, info.input_range) == (64, 4, (-1.0, 1.0))
    assert (info.domain_from, info.domain_to, info.direction) == ("photo", "negative", "a2b")
    assert (info.input_name, info.output_name) == ("image", "translated")
    assert info.metadata["gantool.version"] == GANTOOL_META["gantool.version"]
    assert logs == []
    assert s.provider == "CPUExecutionProvider" and s.provider_name == "cpu"


def test_model_without_metadata_gets_defaults_and_one_note(models):
    logs: list[str] = []
    info = ModelSession(models["bare"], provider="cpu", log=logs.append).info
    assert not info.from_metadata
    assert (info.kind, info.input_size, info.input_range) == ("translation", 256, (-1.0, 1.0))
    assert len(logs) == 1 and "no gantool metadata" in logs[0]


def test_flags_feed_a_foreign_model_silently(models):
    logs: list[str] = []
    s = ModelSession(models["bare"], provider="cpu", size=96, input_range="0,1", log=logs.append)
    assert (s.info.input_size, s.info.input_range) == (96, (0.0, 1.0))
    assert logs == []


def test_generation_model_is_recognised(models):
    info = ModelSession(models["gen"], provider="cpu", log=lambda m: None).info
    assert info.kind == "generation" and info.latent_dim == 8


def test_run_returns_model_output(models):
    s = ModelSession(models["invert"], provider="cpu")
    x = np.random.default_rng(0).uniform(-1, 1, (2, 3, 8, 12)).astype(np.float32)
    np.testing.assert_array_equal(s.run(x), -x)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "model file not found"),
        (b"", "model file is empty"),
        (b"this is not a model\n" * 10, "is not an ONNX model"),
    ],
)
def test_bad_model_files_give_clear_errors(tmp_path, content, message):
    path = tmp_path / "model.onnx"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(GantoolError, match=message):
        ModelSession(path, provider="cpu")


def test_folder_as_model_is_refused(tmp_path):
    with pytest.raises(GantoolError, match="is a folder"):
        ModelSession(tmp_path, provider="cpu")


def test_non_rgb_image_model_is_refused(models):
    with pytest.raises(GantoolError, match="3 \\(RGB\\)"):
        ModelSession(models["gray"], provider="cpu")


def test_auto_provider_reports_what_it_uses(models):
    logs: list[str] = []
    s = ModelSession(models["invert"], provider="auto", log=logs.append)
    assert s.provider == s.session.get_providers()[0]
    if s.provider == "CPUExecutionProvider":
        # The fallback is explained in exactly one line.
        assert len(logs) == 1 and logs[0].startswith("CUDA not used (")
    else:
        assert logs == []


def test_explicit_cuda_without_gpu_runs_on_cpu_with_one_line(models):
    import os

    if os.path.exists("/proc/driver/nvidia/version"):
        pytest.skip("this machine has an NVIDIA driver")
    logs: list[str] = []
    s = ModelSession(models["invert"], provider="cuda", log=logs.append)
    assert s.provider == "CPUExecutionProvider"
    assert len(logs) == 1 and logs[0].startswith("--provider cuda not used (")
    assert logs[0].endswith("; running on CPU.")


def test_unknown_provider(models):
    with pytest.raises(GantoolError, match="unknown provider"):
        ModelSession(models["invert"], provider="gpu")


@pytest.mark.parametrize("text", ["1", "a,b", "1,0", "0,0", ""])
def test_bad_ranges(text):
    with pytest.raises(GantoolError, match="bad input range"):
        parse_range(text)


def test_ranges():
    assert parse_range("-1,1") == (-1.0, 1.0)
    assert parse_range(" 0, 1 ") == (0.0, 1.0)
    assert parse_range("0,255") == (0.0, 255.0)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torch_exported_network_matches_torch(tmp_path):
    """A real exported conv net (what the exporter produces) runs with dynamic H/W."""
    torch = pytest.importorskip("torch")
    import onnx

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, 3, 3, padding=1),
        torch.nn.Tanh(),
    ).eval()
    path = tmp_path / "conv.onnx"
    torch.onnx.export(
        net,
        (torch.randn(1, 3, 32, 32),),
        str(path),
        dynamo=False,
        opset_version=18,
        input_names=["x"],
        output_names=["y"],
        dynamic_axes={"x": {0: "n", 2: "h", 3: "w"}, "y": {0: "n", 2: "h", 3: "w"}},
    )
    model = onnx.load(str(path))
    onnx.helper.set_model_props(model, {**GANTOOL_META, "gantool.model": "conv"})
    onnx.save(model, str(path))
    s = ModelSession(path, provider="cpu")
    x = np.random.default_rng(1).uniform(-1, 1, (2, 3, 40, 52)).astype(np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(s.run(x), expected, atol=1e-5)


def test_an_unknown_operator_is_named_and_onnxruntime_prints_nothing_itself(tmp_path, capfd):
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, "H", "W"])
    y = helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 3, "H", "W"])
    graph = helper.make_graph([helper.make_node("NoSuchOp", ["image"], ["out"])], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 10
    onnx.save(model, str(tmp_path / "odd.onnx"))
    with pytest.raises(GantoolError, match="uses an operator this onnxruntime does not have "
                                           r"\(NoSuchOp"):
        ModelSession(tmp_path / "odd.onnx", "cpu")
    assert "[E:" not in capfd.readouterr().err  # onnxruntime's own coloured error lines
