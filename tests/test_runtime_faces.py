"""Face-aware mode on scikit-image's astronaut photograph."""

from __future__ import annotations

import numpy as np
import pytest
from runtime_helpers import astronaut, make_invert_model
from skimage import data
from translator.plugins import faces as faces_plugin
from translator.plugins.faces import HaarDetector, YuNetDetector

from translator.errors import GantoolError
from translator.face_detectors import create_detector
from translator.runtime.faces import (
    BoxSmoother,
    CutDetector,
    color_match,
    detect_rgb,
)
from translator.runtime.pipeline import FaceOptions, FramePipeline
from translator.runtime.session import ModelSession

FACE = (177, 66, 95, 95)  # where the frontal Haar cascade finds the astronaut's face


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    return ModelSession(make_invert_model(tmp_path_factory.mktemp("m") / "i.onnx"), "cpu")


@pytest.fixture(scope="module")
def haar():
    return HaarDetector()


def test_haar_finds_the_astronaut(haar):
    boxes = detect_rgb(haar, astronaut())
    assert len(boxes) == 1
    x, y, w, h = boxes[0]
    assert abs(x - FACE[0]) <= 6 and abs(y - FACE[1]) <= 6 and abs(w - FACE[2]) <= 8


def test_haar_finds_no_face_in_coffee(haar):
    assert detect_rgb(haar, data.coffee()) == []


@pytest.mark.parametrize("blend", ["feather", "poisson"])
def test_only_the_face_changes(session, haar, blend):
    img = astronaut()
    pipe = FramePipeline(session, FaceOptions(haar, blend=blend))
    out = pipe.process([img])[0]
    assert pipe.last_face_counts == [1]
    assert out.shape == img.shape
    x, y, w, h = FACE
    # Faces are aligned and blended back inside the face only: hair, suit and background
    # further than 40 px from Haar's box are the photo's own.
    outside = np.ones(img.shape[:2], bool)
    outside[max(0, y - 40) : y + h + 40, max(0, x - 40) : x + w + 40] = False
    np.testing.assert_array_equal(out[outside], img[outside])
    # The face itself (its centre half) is strongly changed by the inverting model.
    cy, cx = y + h // 2, x + w // 2
    centre = (slice(cy - h // 4, cy + h // 4), slice(cx - w // 4, cx + w // 4))
    assert np.abs(out[centre].astype(int) - img[centre]).mean() > 60


def test_photo_without_face_is_unchanged(session, haar):
    img = data.coffee()
    pipe = FramePipeline(session, FaceOptions(haar))
    np.testing.assert_array_equal(pipe.process([img])[0], img)
    assert pipe.last_face_counts == [0]


def test_poisson_blend_with_face_at_the_border(session, haar):
    # Crop so the face's aligned square runs off the top-left corner: seamlessClone would
    # assert if its mask touched the border; the guard must keep it working.
    img = np.ascontiguousarray(astronaut()[60:, 170:])
    pipe = FramePipeline(session, FaceOptions(haar, blend="poisson"))
    out = pipe.process([img])[0]
    assert pipe.last_face_counts == [1]
    assert out.shape == img.shape
    assert np.abs(out[20:60, 20:60].astype(int) - img[20:60, 20:60]).mean() > 30
    np.testing.assert_array_equal(out[-80:, -80:], img[-80:, -80:])


def test_color_match_option_runs_and_keeps_outside(session, haar):
    img = astronaut()
    out = FramePipeline(session, FaceOptions(haar, color_match=True)).process([img])[0]
    np.testing.assert_array_equal(out[400:], img[400:])
    assert not np.array_equal(out, img)


def test_color_match_moves_statistics():
    import cv2

    src = data.coffee()[:100, :100]
    ref = data.chelsea()[:100, :100]
    out = color_match(src, ref)
    lab = lambda a: cv2.cvtColor(a, cv2.COLOR_RGB2LAB).reshape(-1, 3).astype(float)  # noqa: E731
    before = np.abs(lab(src).mean(0) - lab(ref).mean(0)).max()
    after = np.abs(lab(out).mean(0) - lab(ref).mean(0)).max()
    assert after < 3 and after < before


def test_box_smoother_steadies_jitter_and_holds_missed_frames():
    rng = np.random.default_rng(0)
    smoother = BoxSmoother(alpha=0.4, hold=2)
    raw, smooth = [], []
    for _ in range(40):
        box = tuple(int(v) for v in np.array(FACE) + rng.integers(-6, 7, 4))
        raw.append(box)
        smooth.append(smoother.update([box])[0])
    assert np.std(np.array(smooth)[10:, 0]) < 0.6 * np.std(np.array(raw)[10:, 0])
    held = smoother.update([])  # one missed detection: the face stays
    assert len(held) == 1
    smoother.update([])
    assert smoother.update([]) == []  # gone after `hold` misses
    # A second face far away starts its own track instead of dragging the first.
    two = smoother.update([FACE, (400, 300, 50, 50)])
    assert (400, 300, 50, 50) in two


def test_a_cut_is_told_from_a_face_that_moves():
    import cv2

    face = cv2.resize(astronaut(), (320, 240))
    cuts = CutDetector()
    moving = [np.roll(face, (3 * i, 2 * i), axis=(0, 1)) for i in range(8)]
    brighter = np.clip(moving[-1].astype(np.int16) + 20, 0, 255).astype(np.uint8)  # exposure
    assert [cuts.is_cut(f) for f in [*moving, brighter]] == [False] * 9
    assert cuts.is_cut(cv2.resize(data.coffee(), (320, 240)))
    cuts.reset()
    assert not cuts.is_cut(face)  # the first frame after a reset starts a shot


def test_box_smoother_matches_the_second_of_two_tracks():
    smoother = BoxSmoother()
    smoother.update([(0, 0, 10, 10), (100, 100, 10, 10)])
    # The best match is not the first track: this once crashed comparing numpy boxes.
    assert (100, 100, 10, 10) in smoother.update([(100, 100, 10, 10)])


def test_faces_plugin_registers_haar_and_yunet():
    specs: list = []
    faces_plugin.register_face_detectors(register=specs.append)
    by_name = {s.name: s for s in specs}
    assert set(by_name) == {"dlib", "haar", "yunet"}
    assert len(detect_rgb(by_name["haar"].create(), astronaut())) == 1
    with pytest.raises(GantoolError, match="needs a model file"):
        by_name["yunet"].create()


def test_create_detector_by_name_and_the_default():
    assert isinstance(create_detector("haar"), HaarDetector)
    default = create_detector()  # dlib when the faces extra is installed, else haar
    assert type(default).__name__ in {"DlibDetector", "HaarDetector"}
    assert len(detect_rgb(default, astronaut())) >= 1
    with pytest.raises(GantoolError, match="unknown face detector"):
        create_detector("no-such-detector")


def test_yunet_refuses_missing_and_wrong_files(tmp_path):
    with pytest.raises(GantoolError, match="not found"):
        YuNetDetector(tmp_path / "missing.onnx")
    wrong = make_invert_model(tmp_path / "not-yunet.onnx")
    with pytest.raises(GantoolError, match="YuNet"):
        YuNetDetector(wrong)


def test_a_face_that_moves_far_between_detections_stays_one_track():
    # A live stream detects every few shown frames, and a slow model shows few: a face can
    # move farther than its boxes overlap. It keeps its track (and id), and no held copy
    # of its old box is left behind to paste a second face there.
    smoother = BoxSmoother()
    smoother.update([(100, 100, 80, 80)])
    first = smoother.tracked()
    moved = smoother.update([(160, 120, 80, 80)])  # IoU 0.14, centre 63 px away
    assert moved == [(160, 120, 80, 80)]  # taken as it is, not trailed by the average
    assert [i for i, _ in smoother.tracked()] == [i for i, _ in first]
    # Someone else, farther than a face's size, is another track.
    assert len(smoother.update([(160, 120, 80, 80), (400, 120, 80, 80)])) == 2
