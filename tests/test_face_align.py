"""One face alignment for training data and the runtime, on scikit-image's astronaut."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import pytest
from runtime_helpers import astronaut, make_invert_model

from translator.face_align import (
    TEMPLATE,
    align_face,
    face_mask,
    find_face,
    landmark_error,
    landmarks_from_box,
    paste_face,
    similarity,
    transform_points,
)
from translator.face_detectors import create_detector
from translator.runtime.pipeline import FaceOptions, FramePipeline
from translator.runtime.session import ModelSession

#: dlib's five landmarks of the astronaut, in face_align's order (measured once).
ASTRONAUT_LANDMARKS = np.array([(195, 101), (212, 103), (238, 104), (255, 104), (224, 135)], float)


def test_similarity_recovers_a_rotation_scale_and_shift():
    angle, scale, shift = np.deg2rad(25), 1.7, np.array([12.0, -30.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    src = np.random.default_rng(0).uniform(0, 100, (5, 2))
    matrix = similarity(src, src @ rot.T + shift)
    np.testing.assert_allclose(matrix[:, :2], rot, atol=1e-9)
    np.testing.assert_allclose(matrix[:, 2], shift, atol=1e-9)


def test_landmarks_land_on_the_template():
    face = align_face(astronaut(), ASTRONAUT_LANDMARKS, 256)
    moved = transform_points(face.matrix, ASTRONAUT_LANDMARKS)
    assert np.abs(moved - TEMPLATE * 256).max() < 4  # a best fit of five points: not exact


def test_dlib_finds_the_astronauts_landmarks_and_they_land_on_the_template_again():
    pytest.importorskip("dlib")
    detector = create_detector("dlib")
    found = find_face(detector, astronaut())
    assert found is not None and landmark_error(found, ASTRONAUT_LANDMARKS) < 0.05
    crop = align_face(astronaut(), found, 256).crop
    again = find_face(detector, crop)
    assert again is not None and landmark_error(again, TEMPLATE * 256) < 0.05


def test_haar_boxes_give_landmarks_close_to_dlibs():
    haar = create_detector("haar")
    found = find_face(haar, astronaut())
    assert found is not None and landmark_error(found, ASTRONAUT_LANDMARKS) < 0.08
    assert landmarks_from_box((0, 0, 100, 100)).shape == (5, 2)


def test_round_trip_changes_nothing_outside_the_face_and_little_inside():
    frame = astronaut()
    face = align_face(frame, ASTRONAUT_LANDMARKS, 256)
    back = paste_face(frame, face.crop, face)
    weight = cv2.warpAffine(face_mask(256), cv2.invertAffineTransform(face.matrix),
                            frame.shape[1::-1])
    np.testing.assert_array_equal(back[weight == 0], frame[weight == 0])
    inside = weight > 0.9
    assert inside.sum() > 3000  # the face's own pixels are blended in
    assert np.abs(back[inside].astype(int) - frame[inside]).mean() < 6


def test_a_translated_face_changes_inside_the_mask_only():
    frame = astronaut()
    face = align_face(frame, ASTRONAUT_LANDMARKS, 128)
    out = paste_face(frame, 255 - face.crop, face)
    changed = np.any(out != frame, axis=2)
    ys, xs = np.nonzero(changed)
    # Within the face (eyes 60 px apart around x 225, y 103): not the hair, not the suit.
    assert 150 < xs.min() and xs.max() < 300 and 30 < ys.min() and ys.max() < 215


class _DotDetector:
    """A detector plugin that reports fixed landmarks (where the test drew them)."""

    def __init__(self, landmarks: np.ndarray) -> None:
        self.points = landmarks

    def detect(self, bgr):
        x0, y0 = self.points.min(0) - 30
        x1, y1 = self.points.max(0) + 30
        return [(int(x0), int(y0), int(x1 - x0), int(y1 - y0))]

    def landmarks(self, bgr, box):
        return self.points


def test_face_mode_feeds_the_model_faces_aligned_to_the_template(tmp_path):
    # Five dots on a tilted "face": face mode must hand the model a crop whose dots lie on
    # the template (eyes level), whatever the tilt, as training data is aligned.
    frame = np.full((300, 300, 3), 90, np.uint8)
    angle = np.deg2rad(30)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    points = (TEMPLATE - 0.5) * 120 @ rot.T + 150
    for x, y in points:
        cv2.circle(frame, (round(x), round(y)), 3, (255, 255, 255), -1)
    session = ModelSession(make_invert_model(tmp_path / "i.onnx"), "cpu")
    pipe = FramePipeline(session, FaceOptions(_DotDetector(points)))
    seen: list[np.ndarray] = []
    translate = pipe.translate

    def record_crops(images: Sequence[np.ndarray]) -> list[np.ndarray]:
        seen.extend(images)
        return translate(images)

    pipe.translate = record_crops  # type: ignore[method-assign]  # a spy on the crops the model gets
    pipe.process([frame])
    (crop,) = seen
    side = crop.shape[0]
    for tx, ty in TEMPLATE * side:
        patch = crop[round(ty) - 2:round(ty) + 3, round(tx) - 2:round(tx) + 3]
        assert patch.mean() > 200, "a landmark dot is not where the template puts it"
