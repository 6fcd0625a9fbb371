"""Execution providers: the options each gets, checked with a stand-in session (no GPU
here), and the fallback when the installed onnxruntime lacks one or it does not start."""

from __future__ import annotations

import typing

import numpy as np
import onnxruntime as ort
import pytest
from runtime_helpers import make_invert_model

from translator.errors import GantoolError
from translator.runtime import providers, session
from translator.runtime.options import RuntimeOptions


@pytest.fixture
def opened(monkeypatch, tmp_path):
    """create_session on a machine that pretends to have CUDA and TensorRT; yields the
    keyword arguments every InferenceSession got."""
    calls = []

    class FakeSession:
        def __init__(self, path, sess_options=None, providers=(), provider_options=None):
            calls.append({"providers": list(providers), "provider_options": provider_options})
            self.providers = list(providers)

        def get_providers(self):
            return self.providers

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(ort, "InferenceSession", FakeSession)
    monkeypatch.setattr(ort, "get_available_providers", lambda: [
        "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(providers, "no_gpu_reason", lambda: None)
    monkeypatch.setattr(providers, "quiet_preload", lambda ort_module: "")
    model = tmp_path / "m.onnx"
    model.write_bytes(b"not read by the stand-in")
    return lambda provider: (session.create_session(model, provider, log=lambda m: None), calls[-1])


def test_cuda_sessions_choose_their_convolution_search_and_arena(opened):
    _, call = opened("cuda")
    options = dict(zip(call["providers"], call["provider_options"], strict=True))
    assert options["CUDAExecutionProvider"] == {
        "cudnn_conv_algo_search": "HEURISTIC", "arena_extend_strategy": "kSameAsRequested"}
    assert options["CPUExecutionProvider"] == {}


def test_tensorrt_sessions_cache_their_engines(opened, tmp_path):
    _, call = opened("tensorrt")
    assert call["providers"] == ["TensorrtExecutionProvider", "CUDAExecutionProvider",
                                 "CPUExecutionProvider"]
    trt = dict(zip(call["providers"], call["provider_options"], strict=True))["TensorrtExecutionProvider"]
    assert trt["trt_engine_cache_enable"] == "True"
    assert trt["trt_engine_cache_path"] == str(tmp_path / "cache" / "gantool" / "tensorrt")
    assert (tmp_path / "cache" / "gantool" / "tensorrt").is_dir()


def test_openvino_runs_fp32_as_the_file_says_and_caches_in_the_user_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    options = providers.provider_options("OpenVINOExecutionProvider")
    assert options["precision"] == "FP32"
    assert options["cache_dir"] == str(tmp_path / "xdg" / "gantool" / "openvino")


def test_every_provider_is_a_row_and_a_choice_of_the_flag():
    names = [row.name for row in providers.PROVIDER_ROWS]
    assert providers.PROVIDERS == ("auto", *names)
    assert len({row.ort_name for row in providers.PROVIDER_ROWS}) == len(names)
    hint = typing.get_type_hints(RuntimeOptions)["provider"]
    assert typing.get_args(hint) == providers.PROVIDERS


@pytest.fixture(scope="module")
def invert(tmp_path_factory):
    return make_invert_model(tmp_path_factory.mktemp("providers") / "invert.onnx")


@pytest.mark.parametrize("name", [row.name for row in providers.PROVIDER_ROWS if row.name != "cpu"])
def test_a_provider_the_package_lacks_falls_back_to_an_identical_cpu_run(monkeypatch, invert, name):
    frame = np.random.default_rng(3).uniform(-1, 1, (1, 3, 16, 20)).astype(np.float32)
    plain = session.ModelSession(invert, "cpu", log=lambda m: None).run(frame)
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    logs: list[str] = []
    fallen = session.ModelSession(invert, name, log=logs.append)
    row = providers.provider_row(name)
    assert logs == [f"--provider {name} not used (this onnxruntime package has no {row.ort_name} "
                    f"({row.install}, and only that onnxruntime package)); running on CPU."]
    assert fallen.provider == "CPUExecutionProvider" and fallen.provider_name == "cpu"
    np.testing.assert_array_equal(fallen.run(frame), plain)


def test_a_listed_provider_that_refuses_to_start_falls_back_with_its_reason(monkeypatch, invert):
    real = ort.InferenceSession

    def refusing(path, sess_options=None, providers=(), provider_options=None):
        if "OpenVINOExecutionProvider" in providers:
            raise RuntimeError("[ONNXRuntimeError] : 1 : FAIL : no OpenVINO device 'CPU'")
        return real(path, sess_options=sess_options, providers=providers)

    monkeypatch.setattr(ort, "get_available_providers",
                        lambda: ["OpenVINOExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(ort, "InferenceSession", refusing)
    logs: list[str] = []
    s = session.ModelSession(invert, "openvino", log=logs.append)
    assert s.provider == "CPUExecutionProvider"
    assert logs == ["--provider openvino not used (OpenVINOExecutionProvider failed to start: "
                    "no OpenVINO device 'CPU'); running on CPU."]


def test_a_file_the_cpu_cannot_load_either_is_the_files_error(monkeypatch, tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    monkeypatch.setattr(ort, "get_available_providers",
                        lambda: ["OpenVINOExecutionProvider", "CPUExecutionProvider"])
    with pytest.raises(GantoolError, match="is not an ONNX model"):
        session.ModelSession(bad, "openvino", log=lambda m: None)


def test_providers_command_lists_every_row_and_checks_a_model(invert):
    from click.testing import CliRunner
    from translator.cli import cli

    listed = CliRunner().invoke(cli, ["providers"], catch_exceptions=False).output
    for row in providers.PROVIDER_ROWS:
        assert f"--provider {row.name}" in listed and row.ort_name in listed
    checked = CliRunner().invoke(cli, ["providers", "--check", str(invert)],
                                 catch_exceptions=False).output
    assert "CPUExecutionProvider       usable" in checked


class _Started:
    """A stand-in InferenceSession that runs on the first provider it is asked for."""

    def __init__(self, path, sess_options=None, providers=(), provider_options=None):
        self.providers = list(providers)

    def get_providers(self):
        return self.providers


def test_auto_takes_openvino_when_cuda_cannot_run_and_says_so(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(ort, "InferenceSession", _Started)
    monkeypatch.setattr(ort, "get_available_providers", lambda: [
        "CUDAExecutionProvider", "OpenVINOExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(providers, "no_gpu_reason", lambda: "no NVIDIA GPU driver found")
    model = tmp_path / "m.onnx"
    model.write_bytes(b"not read by the stand-in")
    logs: list[str] = []
    started = session.create_session(model, "auto", log=logs.append)
    assert started.get_providers() == ["OpenVINOExecutionProvider", "CPUExecutionProvider"]
    assert logs == ["CUDA not used (no NVIDIA GPU driver found); running on OpenVINOExecutionProvider."]
    # Without OpenVINO in the package, auto is what it was: CUDA, else the CPU.
    monkeypatch.setattr(ort, "get_available_providers", lambda: [
        "CUDAExecutionProvider", "CPUExecutionProvider"])
    logs.clear()
    assert session.create_session(model, "auto", log=logs.append).get_providers() == [
        "CPUExecutionProvider"]
    assert logs == ["CUDA not used (no NVIDIA GPU driver found); running on CPU."]
