"""The threaded live stream: stages hand frames on in order (newest wins when live), the
stream stops within seconds when its source dies, and faces in video are detected every
k-th frame on a scaled copy and held over missed detections."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from runtime_helpers import make_invert_model
from test_runtime_webcam import FakeCamera, _camera

from translator.runtime import session as session_module
from translator.runtime import sources, webcam
from translator.runtime.options import RuntimeOptions
from translator.runtime.pipeline import FaceOptions, FramePipeline
from translator.runtime.session import ModelSession
from translator.runtime.stages import END, Frame, Mailbox, Stage
from translator.runtime.webcam import WebcamOptions


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return make_invert_model(tmp_path_factory.mktemp("model") / "invert.onnx")


def _run_chain(live: bool, frames: int, work_seconds: float) -> list[int]:
    """Frames through two stages (the second slow); the indices that come out."""
    stop = threading.Event()
    a, b, c = Mailbox(live), Mailbox(live), Mailbox(live)

    def slow(frame: Frame) -> Frame:
        time.sleep(work_seconds)
        return frame

    stages = [Stage("one", lambda f: f, a, b, stop).start(), Stage("two", slow, b, c, stop).start()]

    def produce() -> None:
        for i in range(frames):
            a.put(Frame(i, time.perf_counter(), np.zeros((2, 2, 3), np.uint8)), stop)
            time.sleep(0.001)
        a.put(END, stop)

    threading.Thread(target=produce, daemon=True).start()
    seen = []
    while (item := c.get(timeout=5)) is not END:
        assert item is not None, "the chain stalled"
        assert "two" in item.seconds
        seen.append(item.index)
    stop.set()
    for s in stages:
        s.join(1)
    return seen


def test_stages_deliver_every_frame_in_order_for_files():
    assert _run_chain(live=False, frames=40, work_seconds=0.002) == list(range(40))


def test_stages_drop_old_frames_but_keep_order_when_live():
    seen = _run_chain(live=True, frames=60, work_seconds=0.02)
    assert seen == sorted(seen) and len(set(seen)) == len(seen)
    assert len(seen) < 60  # the slow stage made it drop, newest winning
    assert seen[-1] >= 55  # and the latest frames made it through


def test_threaded_webcam_delivers_numbered_frames_in_order(model, monkeypatch):
    cam = FakeCamera(30, after="fail")
    monkeypatch.setattr(sources, "open_camera", lambda index, timeout: cam)
    seen: list[int] = []
    real = webcam._Stream.next

    def spy(self):
        frame = real(self)
        if frame is not None:
            seen.append(int(frame.image[0, 0, 0]))
            # The invert model really ran on the (almost black) frame it carries.
            assert frame.output is not None
            assert frame.image.mean() < 1 and frame.output.mean() > 250
        return frame

    monkeypatch.setattr(webcam._Stream, "next", spy)
    res = webcam.run_webcam(model, 0, RuntimeOptions(provider="cpu"), WebcamOptions(window=False),
                            log=lambda m: None)
    assert seen and seen == sorted(seen) and len(set(seen)) == len(seen)
    assert res.frames == len(seen) and res.latency > 0
    assert set(res.stage_seconds) == {"detect", "translate"}


class _RaisingCamera(FakeCamera):
    def read(self):
        if self.n >= self.frames:
            raise RuntimeError("device unplugged")
        return super().read()


@pytest.mark.parametrize("cam", [FakeCamera(5, after="fail"), FakeCamera(5, after="block"),
                                 _RaisingCamera(5)], ids=["fails", "hangs", "raises"])
def test_stream_stops_within_5_s_when_the_source_dies(model, monkeypatch, cam):
    monkeypatch.setattr(sources, "open_camera", lambda index, timeout: cam)
    began = time.perf_counter()
    res = webcam.run_webcam(model, _camera(0, frame_timeout=2.0), RuntimeOptions(provider="cpu"),
                            WebcamOptions(window=False), log=lambda m: None)
    assert time.perf_counter() - began < 5.0
    assert res.ended == "camera stopped" and 1 <= res.frames <= 5
    assert cam.released


def test_inference_threads_leave_a_core_to_detection_when_there_are_enough():
    assert webcam.inference_threads(faces=False, cores=8) == 8
    assert webcam.inference_threads(faces=True, cores=8) == 7
    assert webcam.inference_threads(faces=True, cores=2) == 2


class _ScriptedDetector:
    """Returns the scripted boxes (in the coordinates of the image it is given) per call."""

    def __init__(self, script):
        self.script, self.calls, self.shapes = list(script), 0, []

    def detect(self, bgr):
        self.shapes.append(bgr.shape[:2])
        boxes = self.script[self.calls] if self.calls < len(self.script) else []
        self.calls += 1
        return boxes


def test_faces_detected_every_kth_frame_on_a_scaled_copy_and_held_over_misses(model):
    # Long side 640 -> 320: the detector sees half-size frames; the face is at (100, 80),
    # 60 px wide there, i.e. (200, 160, 120, 120) in the frame. The second detection misses.
    face = (100, 80, 60, 60)
    detector = _ScriptedDetector([[face], [], [face], [face]])
    opts = FaceOptions(detector, smooth=True, detect_every=3, detect_side=320)
    pipe = FramePipeline(ModelSession(model, "cpu", log=lambda m: None), opts, batch_size=1)
    frames = [np.full((480, 640, 3), 100, np.uint8) for _ in range(12)]
    boxes = [pipe.face_boxes(f) for f in frames]
    assert detector.calls == 4  # frames 0, 3, 6, 9
    assert set(detector.shapes) == {(240, 320)}
    assert all(b == [(200, 160, 120, 120)] for b in boxes), boxes  # no popping, no drift
    out = pipe.translate_faces(frames[:2], boxes[:2])
    assert out[0][220, 260, 0] == 155 and out[0][10, 10, 0] == 100  # face inverted, rest kept


def test_a_face_lost_for_good_goes_after_the_hold():
    from translator.runtime.faces import BoxSmoother

    smoother = BoxSmoother(hold=2)
    assert smoother.update([(10, 10, 50, 50)]) == [(10, 10, 50, 50)]
    assert smoother.update([]) == [(10, 10, 50, 50)]
    assert smoother.update([]) == [(10, 10, 50, 50)]
    assert smoother.update([]) == []


def test_several_faces_go_through_the_model_in_one_batch(model, monkeypatch):
    detector = _ScriptedDetector([[(40, 40, 60, 60), (300, 200, 64, 64)]])
    opts = FaceOptions(detector, smooth=True)
    session = ModelSession(model, "cpu", log=lambda m: None)
    batches: list[tuple[int, ...]] = []
    real_run = session.run

    def run(batch: np.ndarray) -> np.ndarray:
        batches.append(batch.shape)
        return real_run(batch)

    monkeypatch.setattr(session, "run", run)
    pipe = FramePipeline(session, opts, batch_size=4)
    frame = np.full((480, 640, 3), 100, np.uint8)
    out = pipe.translate_faces([frame], [pipe.face_boxes(frame)])[0]
    assert [b[0] for b in batches] == [2]  # one run, both faces
    assert out[70, 70, 0] == 155 and out[232, 332, 0] == 155 and out[5, 630, 0] == 100


def test_webcam_detects_faces_only_every_third_frame(tmp_path, model, monkeypatch):
    from runtime_helpers import write_video

    from translator import face_detectors

    detector = _ScriptedDetector([[(10, 10, 30, 30)]] * 100)
    monkeypatch.setattr(face_detectors, "create_detector", lambda name, **options: detector)
    clip = write_video(tmp_path / "clip.mp4", frames=30, size=(96, 64), fps=10.0)
    res = webcam.run_webcam(model, clip, RuntimeOptions(faces=True, provider="cpu"),
                            WebcamOptions(window=False), log=lambda m: None)
    assert res.frames == 30 and detector.calls == 10


def test_stream_sets_onnxruntime_threads_deliberately(model, monkeypatch):
    session = ModelSession(model, "cpu", log=lambda m: None, threads=1)
    options = session.session.get_session_options()
    assert options.intra_op_num_threads == 1 and options.inter_op_num_threads == 1
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    made = []
    real = session_module.ModelSession

    def spy(*args, **kwargs):
        made.append(kwargs.get("threads"))
        return real(*args, **kwargs)

    monkeypatch.setattr(session_module, "ModelSession", spy)
    monkeypatch.setattr(sources, "open_camera", lambda index, timeout: FakeCamera(3))
    monkeypatch.setattr(webcam, "usable_cores", lambda: 6)
    webcam.run_webcam(model, 0, RuntimeOptions(provider="cpu"), WebcamOptions(window=False),
                      log=lambda m: None)
    webcam.run_webcam(model, 0, RuntimeOptions(provider="cpu"), WebcamOptions(window=False, threads=2),
                      log=lambda m: None)
    assert made == [6, 2]


class _EndlessCamera(FakeCamera):
    def read(self):
        return True, np.zeros((24, 32, 3), np.uint8)


def test_a_model_slower_than_the_frame_timeout_is_not_a_dead_camera(model, monkeypatch):
    monkeypatch.setattr(sources, "open_camera", lambda index, timeout: _EndlessCamera(0))
    real = FramePipeline.translate

    def slow(self, images):
        time.sleep(1.2)
        return real(self, images)

    monkeypatch.setattr(FramePipeline, "translate", slow)
    res = webcam.run_webcam(model, _camera(0, frame_timeout=0.1), RuntimeOptions(provider="cpu"),
                            WebcamOptions(window=False, max_frames=2), log=lambda m: None)
    assert (res.frames, res.ended) == (2, "max-frames")
