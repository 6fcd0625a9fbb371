"""``--face``: which faces are translated, chosen once and followed across a video's frames
so the choice never jumps between people; in the pipeline, ``apply`` on video and ``webcam``.

The clip has two faces (a stand-in detector says where): A on the left starts larger and
shrinks, B on the right starts smaller and grows past it."""

from __future__ import annotations

import numpy as np
import pytest
from runtime_helpers import make_invert_model

from translator import face_detectors
from translator.errors import GantoolError
from translator.runtime import webcam
from translator.runtime.apply import apply
from translator.runtime.faces import FaceChoice
from translator.runtime.options import RuntimeOptions
from translator.runtime.pipeline import FaceOptions, FramePipeline
from translator.runtime.session import ModelSession
from translator.runtime.webcam import WebcamOptions

FRAMES, H, W, GREY = 20, 240, 320, 100
A_CENTRE, B_CENTRE = (70, 105), (230, 105)


def _box(centre: tuple[int, int], side: int) -> tuple[int, int, int, int]:
    return centre[0] - side // 2, centre[1] - side // 2, side, side


def two_faces(i: int, b_only_after: int | None = None) -> list[tuple[int, int, int, int]]:
    """Frame i's faces, as the detector sees them (left to right)."""
    a = _box(A_CENTRE, 80 - 2 * i)   # 80 -> 42
    b = _box(B_CENTRE, 40 + 2 * i)   # 40 -> 78: the larger one from frame 10 on
    return [b] if b_only_after is not None and i >= b_only_after else [a, b]


class ClipDetector:
    """Answers frame by frame from a script, whatever the pixels."""

    def __init__(self, script: list[list[tuple[int, int, int, int]]]) -> None:
        self.script, self.calls = script, 0
        self.read: list[tuple[int, int, int, int]] = []

    def detect(self, bgr: np.ndarray) -> list[tuple[int, int, int, int]]:
        boxes = self.script[min(self.calls, len(self.script) - 1)]
        self.calls += 1
        return boxes


class GenderedDetector(ClipDetector):
    """Also reads gender: the left face as female, the right one as male."""

    def gender(self, bgr: np.ndarray, box: tuple[int, int, int, int]) -> str:
        self.read.append(box)
        return "female" if box[0] + box[2] / 2 < W / 2 else "male"


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return make_invert_model(tmp_path_factory.mktemp("face-choice") / "invert.onnx")


def changed(frame: np.ndarray, centre: tuple[int, int]) -> bool:
    """Whether the face at ``centre`` was translated (inverted: grey 100 -> 155)."""
    x, y = centre
    return abs(float(frame[y - 3:y + 4, x - 3:x + 4].mean()) - (255 - GREY)) < 20


def run_clip(model, choice: str, detector: ClipDetector) -> list[tuple[bool, bool]]:
    """(A changed, B changed) per frame of the clip through the video pipeline."""
    opts = FaceOptions(detector, smooth=True, choice=FaceChoice.parse(choice))
    pipe = FramePipeline(ModelSession(model, "cpu", log=lambda m: None), opts)
    frames = [np.full((H, W, 3), GREY, np.uint8) for _ in range(FRAMES)]
    return [(changed(out, A_CENTRE), changed(out, B_CENTRE))
            for out in (pipe.process([f])[0] for f in frames)]


@pytest.mark.parametrize(("choice", "a", "b"), [
    ("all", True, True), ("largest", True, False), ("left", True, False),
    ("right", False, True), ("1", True, False), ("2", False, True), ("3", False, False)])
def test_only_the_chosen_face_changes_in_every_frame(model, choice, a, b):
    detector = ClipDetector([two_faces(i) for i in range(FRAMES)])
    assert run_clip(model, choice, detector) == [(a, b)] * FRAMES


def test_the_largest_face_is_followed_when_another_grows_past_it(model):
    # From frame 10 B is the larger; the choice stays with A, the face it made first.
    script = [two_faces(i) for i in range(FRAMES)]
    assert script[15][1][2] > script[15][0][2]
    assert run_clip(model, "largest", ClipDetector(script)) == [(True, False)] * FRAMES


def test_a_chosen_face_that_leaves_is_replaced_by_one_in_view(model):
    # A leaves at frame 8; its track is held for 3 detections, then B is chosen.
    seen = run_clip(model, "left", ClipDetector([two_faces(i, b_only_after=8) for i in range(FRAMES)]))
    assert seen[:8] == [(True, False)] * 8
    assert seen[-5:] == [(False, True)] * 5


def test_gender_is_read_once_per_face_and_picks_by_it(model):
    detector = GenderedDetector([two_faces(i) for i in range(FRAMES)])
    assert run_clip(model, "male", detector) == [(False, True)] * FRAMES
    assert len(detector.read) == 2  # once per tracked face, not per frame


def test_gender_needs_a_detector_that_reads_it(model):
    with pytest.raises(GantoolError, match="--face female needs a face detector that reads gender"):
        run_clip(model, "female", ClipDetector([two_faces(0)]))


@pytest.mark.parametrize("word", ["biggest", "0", "-1", ""])
def test_a_choice_gantool_does_not_know_is_one_line(word):
    with pytest.raises(GantoolError, match=f"--face {word}: choose all, largest"):
        RuntimeOptions(face=word)


def test_a_choice_of_faces_means_face_mode():
    assert RuntimeOptions(face="left").faces and not RuntimeOptions().faces


def write_clip(path, frames: int = FRAMES):
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10.0, (W, H))
    for _ in range(frames):
        writer.write(np.full((H, W, 3), GREY, np.uint8))
    writer.release()
    return path


def read_clip(path) -> list[np.ndarray]:
    import cv2

    cap = cv2.VideoCapture(str(path))
    frames = []
    while (got := cap.read())[0]:
        frames.append(got[1][..., ::-1])
    cap.release()
    return frames


def test_apply_on_video_translates_only_the_chosen_face(tmp_path, model, monkeypatch):
    detector = ClipDetector([two_faces(i) for i in range(FRAMES)])
    monkeypatch.setattr(face_detectors, "create_detector", lambda name, **options: detector)
    clip, out = write_clip(tmp_path / "two.avi"), tmp_path / "out.avi"
    report = apply(model, [str(clip)], str(out),
                   RuntimeOptions(provider="cpu", face="right", progress=False), log=lambda m: None)
    assert not report.failed
    frames = read_clip(report.written[0][1])
    assert len(frames) == FRAMES
    assert [(changed(f, A_CENTRE), changed(f, B_CENTRE)) for f in frames] == [(False, True)] * FRAMES


def test_webcam_translates_only_the_chosen_face(tmp_path, model, monkeypatch):
    detector = ClipDetector([two_faces(i) for i in range(FRAMES)])
    monkeypatch.setattr(face_detectors, "create_detector", lambda name, **options: detector)
    outputs: list[np.ndarray] = []
    real = webcam._Stream.next

    def spy(self):
        frame = real(self)
        if frame is not None and frame.output is not None:
            outputs.append(frame.output)
        return frame

    monkeypatch.setattr(webcam._Stream, "next", spy)
    webcam.run_webcam(model, write_clip(tmp_path / "two.avi"), RuntimeOptions(provider="cpu", face="left"),
                      WebcamOptions(window=False, detect_every=1), log=lambda m: None)
    assert len(outputs) == FRAMES
    assert [(changed(f, A_CENTRE), changed(f, B_CENTRE)) for f in outputs] == [(True, False)] * FRAMES


def test_apply_by_gender_without_a_reader_is_one_line_before_any_file(tmp_path, model, monkeypatch):
    from runtime_helpers import invoke

    detector = ClipDetector([two_faces(0)])
    monkeypatch.setattr(face_detectors, "create_detector", lambda name, **options: detector)
    clip, out = write_clip(tmp_path / "two.avi", frames=2), tmp_path / "out.avi"
    result = invoke(["apply", "-m", str(model), str(clip), "-o", str(out), "--face", "male",
                     "--provider", "cpu"])
    assert result.exit_code != 0 and detector.calls == 0 and not out.exists()
    assert "--face male needs a face detector that reads gender" in result.output
