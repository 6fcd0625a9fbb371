"""The independent gender judge in ``gantool evaluate``, on a tiny CelebA-shaped root made
from scikit-image's astronaut (no CelebA image: its licence keeps them out of the project)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from runtime_helpers import astronaut

from translator.errors import MissingExtra
from translator.evaluate import evaluate_run

pytest.importorskip("dlib")

from translator.plugins.faces import judge as judge_module  # noqa: E402


def test_the_judge_reads_the_astronaut_as_female_and_as_herself():
    j = judge_module.judge()
    rect = j.find(astronaut())
    assert rect is not None
    reading = j.read(astronaut(), rect)
    assert reading.gender == "female" and reading.p_male < 0.3
    pair = judge_module.read_pair(astronaut(), astronaut())
    assert pair is not None and pair.same_person and pair.face_found


def test_a_face_of_another_image_is_not_the_same_person():
    j = judge_module.judge()
    rect = j.find(astronaut())
    flat = np.full_like(astronaut(), 128)
    other = j.read(flat, rect)
    assert np.linalg.norm(other.embedding - j.read(astronaut(), rect).embedding) > 0.6


def celeba_root(root: Path, count: int = 8) -> Path:
    """A CelebA layout of astronaut variants (178x218, like CelebA's aligned crops): half
    labelled male, two of each in the test split."""
    face = astronaut()[20:290, 115:335]
    (root / "img_align_celeba").mkdir(parents=True)
    rows, parts = [], []
    for i in range(count):
        img = cv2.resize(face, (178, 218), interpolation=cv2.INTER_AREA)
        img = np.clip(img.astype(int) + (i - count // 2) * 6, 0, 255).astype(np.uint8)
        img = img[:, ::-1] if i % 3 == 0 else img
        name = f"{i + 1:06d}.jpg"
        cv2.imwrite(str(root / "img_align_celeba" / name), np.ascontiguousarray(img[..., ::-1]))
        rows.append(f"{name} {1 if i % 2 else -1}")
        parts.append(f"{name} {2 if i >= count - 4 else 0}")
    (root / "list_attr_celeba.txt").write_text(f"{count}\nMale\n" + "\n".join(rows) + "\n")
    (root / "list_eval_partition.txt").write_text("\n".join(parts) + "\n")
    return root


@pytest.fixture(scope="module")
def face_run(tmp_path_factory, run_cli_module):
    root = celeba_root(tmp_path_factory.mktemp("celeba"))
    run = tmp_path_factory.mktemp("runs") / "faces"
    result = run_cli_module("train", "cyclegan", "--data", str(root), "--domain-a", "male",
                            "--domain-b", "female", "--size", "64", "--steps", "2", "--ngf", "8",
                            "--ndf", "8", "--out", str(run))
    assert result.exit_code == 0, result.output
    assert "faces aligned to gantool's template" in result.output
    return run


def test_evaluate_reports_the_judges_figures_for_a_face_run(face_run):
    evaluation = evaluate_run(face_run, progress=False)
    for column in ("a2b", "b2a"):
        figures = evaluation.figures[column]
        for name in ("read as target", "real read as source", "identity kept", "face found"):
            assert 0.0 <= figures[name] <= 1.0, (column, name, figures)
        assert figures["faces judged"] >= 1
    # Every input is the astronaut: the judge reads the real female ones as female.
    assert evaluation.figures["b2a"]["real read as source"] == 1.0
    assert evaluation.figures["a2b"]["real read as source"] == 0.0


def test_without_the_faces_extra_evaluate_says_in_one_line_what_it_skipped(face_run, monkeypatch):
    def missing():
        raise MissingExtra('dlib is not installed (pip install "gantool[faces]")')

    monkeypatch.setattr(judge_module, "judge", missing)
    evaluation = evaluate_run(face_run, progress=False)
    skipped = [n for n in evaluation.notes if "faces" in n]
    assert skipped == ["skipped figure 'faces': dlib is not installed "
                       '(pip install "gantool[faces]")']
    assert "read as target" not in evaluation.figures["a2b"]
    assert "cycle L1" in evaluation.figures["a2b"]


def test_align_faces_puts_every_training_face_on_the_template(tmp_path):
    import dataclasses

    from translator.config import TrainConfig
    from translator.data.datasets import open_data
    from translator.face_align import TEMPLATE, find_face, landmark_error
    from translator.face_detectors import create_detector

    root = celeba_root(tmp_path / "celeba")
    train = TrainConfig(model="cyclegan", data=str(root), domain_a="male", domain_b="female")
    aligned = open_data(train, "translation")["a"]  # auto: CelebA holds faces
    detector = create_detector("dlib")
    for i in range(len(aligned)):
        img = aligned.load(i)
        assert img.shape[0] == img.shape[1] >= 256
        found = find_face(detector, img)
        assert found is not None and landmark_error(found, TEMPLATE * img.shape[0]) < 0.06
    raw = open_data(dataclasses.replace(train, align_faces="off"), "translation")["a"].load(0)
    assert raw.shape[:2] == (218, 178)


def test_a_data_set_of_faces_brings_the_models_face_defaults_and_given_flags_win(
        tmp_path, run_cli):
    import json

    from translator.registry import get_registry

    defaults = get_registry().model("cyclegan").face_defaults
    assert defaults, "cyclegan declares defaults for faces"
    root = celeba_root(tmp_path / "celeba")
    args = ["train", "cyclegan", "--data", root, "--domain-a", "male", "--domain-b", "female",
            "--size", "32", "--steps", "1", "--ndf", "8"]
    result = run_cli(*args, "--out", tmp_path / "faces")
    assert result.exit_code == 0, result.output
    assert "defaults for faces" in result.output
    recorded = json.loads((tmp_path / "faces" / "config.json").read_text())
    for name, value in defaults.items():
        assert {**recorded["train"], **recorded["model_config"]}[name] == value
    result = run_cli(*args, "--ngf", "8", "--out", tmp_path / "given")
    assert json.loads((tmp_path / "given" / "config.json").read_text())["model_config"]["ngf"] == 8


def test_the_dlib_detector_reads_gender_and_face_female_translates_only_her(tmp_path):
    from runtime_helpers import invoke, make_invert_model

    from translator.face_detectors import create_detector

    bgr = np.ascontiguousarray(astronaut()[..., ::-1])
    detector = create_detector("dlib")
    box = max(detector.detect(bgr), key=lambda b: b[2] * b[3])
    assert detector.gender(bgr, box) == "female"

    source = tmp_path / "astronaut.png"
    cv2.imwrite(str(source), bgr)
    model = make_invert_model(tmp_path / "invert.onnx")
    outputs = {}
    for choice in ("female", "male"):
        out = tmp_path / f"{choice}.png"
        result = invoke(["apply", "-m", str(model), str(source), "-o", str(out), "--face", choice,
                         "--detector", "dlib", "--provider", "cpu"])
        assert result.exit_code == 0, result.output
        written = cv2.imread(str(out))
        assert written is not None
        outputs[choice] = written.astype(int)
    x, y, w, h = box
    face = (slice(y, y + h), slice(x, x + w))
    assert np.abs(outputs["female"][face] - bgr[face]).mean() > 40  # her face inverted
    assert np.abs(outputs["male"] - bgr).max() <= 2  # no face read as male: nothing changed
