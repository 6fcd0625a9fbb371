"""``gantool webcam --virtual-camera``: every translated frame reaches the virtual camera in
order, at the source's size and frame rate; a missing package or backend is one line."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
from runtime_helpers import make_invert_model
from test_runtime_webcam import FakeCamera, FakeFile

from translator.errors import GantoolError
from translator.runtime import sinks, webcam
from translator.runtime.options import RuntimeOptions
from translator.runtime.webcam import WebcamOptions


class StandInCamera:
    """pyvirtualcam.Camera's surface: records every frame it is sent."""

    opened: list[StandInCamera] = []

    def __init__(self, width: int, height: int, fps: float, *, fmt: object = None) -> None:
        self.width, self.height, self.fps, self.fmt = width, height, fps, fmt
        self.sent: list[np.ndarray] = []
        self.closed = False
        self.device = "/dev/video9"
        StandInCamera.opened.append(self)

    def send(self, frame: np.ndarray) -> None:
        assert frame.shape == (self.height, self.width, 3) and frame.dtype == np.uint8
        self.sent.append(frame.copy())

    def close(self) -> None:
        self.closed = True


class FlatCamera(FakeCamera):
    """Frame n is flat grey n * 10, so it keeps its number through every resize."""

    def read(self):
        ok, frame = super().read()
        if ok:
            frame[:] = 10 * (self.n - 1)
        return ok, frame


@pytest.fixture
def backend(monkeypatch):
    """A stand-in pyvirtualcam module whose cameras record what they get."""
    module = types.ModuleType("pyvirtualcam")
    module.Camera = StandInCamera  # type: ignore[attr-defined]
    module.PixelFormat = types.SimpleNamespace(RGB="rgb")  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pyvirtualcam", module)
    StandInCamera.opened = []
    return StandInCamera.opened


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return make_invert_model(tmp_path_factory.mktemp("vcam") / "invert.onnx")


def test_every_translated_frame_reaches_the_virtual_camera_in_order(backend, model):
    logs: list[str] = []
    result = webcam.run_webcam(model, FakeFile(FlatCamera(12)), RuntimeOptions(provider="cpu"),
                               WebcamOptions(window=False, virtual_camera=True), log=logs.append)
    assert result.frames == 12 and len(backend) == 1
    camera = backend[0]
    assert (camera.width, camera.height, camera.fps, camera.fmt) == (32, 24, 10.0, "rgb")
    # The invert model ran: frame n (flat grey 10 n) arrives as 255 - 10 n, in order.
    assert [int(np.median(f)) for f in camera.sent] == [255 - 10 * n for n in range(12)]
    assert camera.closed
    assert "Sending to the virtual camera /dev/video9 (32x24 at 10 FPS)" in logs


def test_without_a_display_it_feeds_the_virtual_camera_and_opens_no_window(backend, model,
                                                                          monkeypatch):
    monkeypatch.setattr(webcam, "has_display", lambda: False)
    logs: list[str] = []
    result = webcam.run_webcam(model, FakeFile(FlatCamera(4)), RuntimeOptions(provider="cpu"),
                               WebcamOptions(virtual_camera=True), log=logs.append)
    assert result.frames == 4 and len(backend[0].sent) == 4
    assert any("frames go to the virtual camera only" in line for line in logs)


def test_without_a_display_or_a_virtual_camera_a_window_is_an_error(model, monkeypatch):
    monkeypatch.setattr(webcam, "has_display", lambda: False)
    with pytest.raises(GantoolError, match="no display"):
        webcam.run_webcam(model, FakeFile(FlatCamera(4)), RuntimeOptions(provider="cpu"),
                          WebcamOptions(), log=lambda m: None)


def test_side_by_side_goes_out_at_the_width_it_has(backend, model):
    webcam.run_webcam(model, FakeFile(FakeCamera(3)), RuntimeOptions(provider="cpu", side_by_side=True),
                      WebcamOptions(window=False, virtual_camera=True), log=lambda m: None)
    assert (backend[0].width, backend[0].height, len(backend[0].sent)) == (64, 24, 3)


def test_without_pyvirtualcam_it_says_how_to_get_it_before_opening_anything(monkeypatch, model):
    monkeypatch.setitem(sys.modules, "pyvirtualcam", None)  # import fails
    cam = FakeCamera(3)
    with pytest.raises(GantoolError, match=r'pip install "gantool\[vcam\]"') as caught:
        webcam.run_webcam(model, FakeFile(cam), RuntimeOptions(provider="cpu"),
                          WebcamOptions(window=False, virtual_camera=True), log=lambda m: None)
    assert "\n" not in str(caught.value) and cam.released


def test_without_a_backend_it_says_how_to_get_one(monkeypatch, backend, model):
    def no_device(*args: object, **kwargs: object) -> None:
        raise RuntimeError("'v4l2loopback' backend: No v4l2 loopback device found at /dev/video[0-99].")

    monkeypatch.setattr(StandInCamera, "__init__", no_device)
    monkeypatch.setattr(sys, "platform", "linux")
    with pytest.raises(GantoolError) as caught:
        webcam.run_webcam(model, FakeFile(FakeCamera(3)), RuntimeOptions(provider="cpu"),
                          WebcamOptions(window=False, virtual_camera=True), log=lambda m: None)
    message = str(caught.value)
    assert message.startswith("--virtual-camera: no virtual camera to send to ('v4l2loopback' backend")
    assert "modprobe v4l2loopback" in message and "\n" not in message


def test_the_sink_opens_at_the_first_frames_size_and_closes_its_camera():
    opened: list[StandInCamera] = []

    def opener(width: int, height: int, fps: float) -> StandInCamera:
        opened.append(StandInCamera(width, height, fps))
        return opened[-1]

    sink = sinks.VirtualCameraSink(25.0, opener)
    for n in range(4):
        sink.write(np.full((6, 8, 3), n, np.uint8))
    sink.close()
    assert len(opened) == 1 and (opened[0].width, opened[0].height, opened[0].fps) == (8, 6, 25.0)
    assert [int(f[0, 0, 0]) for f in opened[0].sent] == [0, 1, 2, 3] and sink.frames == 4
    assert opened[0].closed and str(sink.path) == "/dev/video9"
