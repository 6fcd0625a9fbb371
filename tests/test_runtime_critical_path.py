"""What keeps the live stream as fast as its model: faces are detected only in frames the
model then translates (none in frames dropped on the way), and a face is blended back over
the part of the frame its crop covers, with the result of blending the whole frame."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from runtime_helpers import make_invert_model
from test_runtime_webcam import FakeCamera

from translator import face_detectors
from translator.face_align import align_face, face_side, landmarks_from_box, paste_face
from translator.runtime import sources, webcam
from translator.runtime.options import RuntimeOptions
from translator.runtime.pipeline import FramePipeline, paste_inside
from translator.runtime.stages import END, Frame, Mailbox, Stage
from translator.runtime.webcam import WebcamOptions


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return make_invert_model(tmp_path_factory.mktemp("critical") / "invert.onnx")


class CountingDetector:
    def __init__(self) -> None:
        self.calls = 0

    def detect(self, bgr: np.ndarray) -> list[tuple[int, int, int, int]]:
        self.calls += 1
        return [(4, 4, 16, 16)]


class EndlessCamera(FakeCamera):
    """A camera faster than any model: a new frame on every read."""

    def read(self):
        time.sleep(0.002)
        return True, np.zeros((24, 32, 3), np.uint8)


@pytest.mark.parametrize(("spare", "most"), [(False, 13), (True, 10**6)])
def test_without_a_spare_core_faces_are_detected_only_in_frames_the_model_takes(
        model, monkeypatch, spare, most):
    detector = CountingDetector()
    monkeypatch.setattr(face_detectors, "create_detector", lambda name, **options: detector)
    monkeypatch.setattr(sources, "open_camera", lambda index, timeout: EndlessCamera(0))
    monkeypatch.setattr(webcam, "usable_cores", lambda: 2)
    real = FramePipeline.translate_faces

    def slow(self, frames, boxes):
        time.sleep(0.05)  # a model slower than the camera: most frames are dropped
        return real(self, frames, boxes)

    monkeypatch.setattr(FramePipeline, "translate_faces", slow)
    threads = 1 if spare else 2
    result = webcam.run_webcam(model, 0, RuntimeOptions(provider="cpu", faces=True),
                               WebcamOptions(window=False, max_frames=10, detect_every=1,
                                             threads=threads), log=lambda m: None)
    assert result.frames == 10 and result.dropped > 10
    # One detection per translated frame, and one for the frame in flight when it stopped.
    assert detector.calls <= most
    if spare:  # the detector runs beside the model, on frames that are then dropped too
        assert detector.calls > 13


def test_a_gated_stage_takes_the_newest_frame_once_its_gate_opens():
    stop, opened = threading.Event(), threading.Event()
    inbox, outbox = Mailbox(live=True), Mailbox(live=True)
    stage = Stage("gated", lambda f: f, inbox, outbox, stop)
    stage.gate = opened.wait
    stage.start()
    for i in range(5):
        inbox.put(Frame(i, time.perf_counter(), np.zeros((1, 1, 3), np.uint8)), stop)
    assert outbox.get(0.2) is None  # nothing taken while closed
    opened.set()
    assert outbox.get(2.0).index == 4  # the newest, the others dropped
    inbox.put(END, stop)
    assert outbox.get(2.0) is END
    stop.set()
    stage.join(1.0)


@pytest.mark.parametrize("box", [(250, 150, 120, 120), (-30, -20, 90, 90), (560, 400, 110, 110)],
                         ids=["inside", "top-left edge", "bottom-right edge"])
def test_pasting_inside_the_faces_part_gives_the_whole_frames_result(box):
    yy, xx = np.mgrid[0:480, 0:640]
    frame = np.stack([xx * 255 // 639, yy * 255 // 479, (xx + yy) * 255 // 1118], -1).astype(np.uint8)
    marks = landmarks_from_box(box)
    face = align_face(frame, marks, face_side(marks))
    new = 255 - face.crop
    whole = paste_face(frame, new, face)
    inside = frame.copy()
    paste_inside(inside, new, face, 0.12)
    import cv2

    changed = np.any(whole != frame, axis=-1)
    assert changed.any()
    near = cv2.dilate(changed.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    assert np.array_equal(inside[~near], frame[~near])  # away from the face: the frame's own
    # The same up to the rounding of the warp's fixed-point coordinates (1/32 px).
    assert np.abs(inside.astype(int) - whole).max() <= 1
