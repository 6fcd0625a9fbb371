"""The options each onnxruntime provider gets, checked with a stand-in session (no GPU here)."""

from __future__ import annotations

import onnxruntime as ort
import pytest

from translator.runtime import session


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
    monkeypatch.setattr(session, "_no_gpu_reason", lambda: None)
    monkeypatch.setattr(session, "_quiet_preload", lambda ort_module: "")
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
    trt = dict(zip(call["providers"], call["provider_options"], strict=True))["TensorrtExecutionProvider"]
    assert trt["trt_engine_cache_enable"] == "True"
    assert trt["trt_engine_cache_path"] == str(tmp_path / "cache" / "gantool" / "tensorrt")
    assert (tmp_path / "cache" / "gantool" / "tensorrt").is_dir()
