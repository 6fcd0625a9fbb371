"""``gantool apply`` on files, messy folders and videos, through the real CLI."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from runtime_helpers import astronaut, count_frames, fake_size_png, invoke, make_invert_model, write_video
from skimage import data

from translator.errors import GantoolError
from translator.runtime.apply import apply
from translator.runtime.options import RuntimeOptions


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return make_invert_model(tmp_path_factory.mktemp("model") / "invert.onnx")


def _messy_folder(root: Path) -> tuple[dict[str, Path], dict[str, Path]]:
    """Valid images of every awkward kind, and bad files; returns (good, bad) by name."""
    coffee, chelsea = data.coffee(), data.chelsea()
    (root / "sub" / "deeper").mkdir(parents=True)
    good = {
        "coffee.png": root / "coffee.png",
        "chelsea.jpg": root / "sub" / "chelsea.jpg",
        "astro.webp": root / "sub" / "deeper" / "astro.webp",
        "small.bmp": root / "small.bmp",
        "gray16.tif": root / "gray16.tif",
        "cmyk.jpg": root / "cmyk.jpg",
        "palette.png": root / "palette.png",
        "rgba.png": root / "rgba.png",
        "gray.png": root / "sub" / "gray.png",
        "large.jpg": root / "large.jpg",
    }
    Image.fromarray(coffee).save(good["coffee.png"])
    Image.fromarray(chelsea).save(good["chelsea.jpg"], quality=90)
    Image.fromarray(astronaut()[::4, ::4]).save(good["astro.webp"])
    Image.fromarray(coffee[:50, :70]).save(good["small.bmp"])
    ramp = (np.linspace(0, 65535, 120 * 90).reshape(90, 120)).astype(np.uint16)
    Image.fromarray(ramp).save(good["gray16.tif"])  # a uint16 array is mode I;16
    Image.fromarray(chelsea).convert("CMYK").save(good["cmyk.jpg"])
    Image.fromarray(coffee).convert("P", palette=Image.Palette.ADAPTIVE).save(good["palette.png"])
    rgba = np.dstack([chelsea, np.full(chelsea.shape[:2], 128, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(good["rgba.png"])
    Image.fromarray(coffee[..., 1]).save(good["gray.png"])
    big = np.zeros((3000, 4000, 3), np.uint8)
    big[..., 0] = np.linspace(0, 255, 4000, dtype=np.uint8)[None, :]
    Image.fromarray(big).save(good["large.jpg"], quality=80)

    bad = {
        "corrupt.png": root / "corrupt.png",
        "truncated.jpg": root / "sub" / "truncated.jpg",
        "empty.jpg": root / "empty.jpg",
        "notes.png": root / "notes.png",
        "bomb.png": root / "bomb.png",
    }
    bad["corrupt.png"].write_bytes(b"\x89PNG\r\n\x1a\n" + np.random.bytes(500))
    full = good["chelsea.jpg"].read_bytes()
    bad["truncated.jpg"].write_bytes(full[: len(full) // 2])
    bad["empty.jpg"].write_bytes(b"")
    bad["notes.png"].write_text("these are my notes, not a picture\n")
    fake_size_png(bad["bomb.png"], 20000, 20000)
    (root / "README.txt").write_text("not an image at all")
    (root / ".hidden.png").write_bytes(b"ignored")
    return good, bad


def test_messy_folder_processes_good_and_reports_bad(tmp_path, model):
    src = tmp_path / "photos"
    good, bad = _messy_folder(src)
    out = tmp_path / "out"
    result = invoke(
        [
            "apply",
            "--model",
            str(model),
            str(src),
            "-o",
            str(out),
            "--provider",
            "cpu",
            "--no-progress",
            "--batch-size",
            "3",
        ]
    )
    assert result.exit_code == 1, result.output
    err = result.stderr
    for name in bad:
        line = next((ln for ln in err.splitlines() if name in ln), None)
        assert line is not None and line.startswith("failed"), f"{name} not reported:\n{err}"
    assert "empty.jpg: empty file" in err
    assert "notes.png: not an image" in err
    bomb = next(ln for ln in err.splitlines() if "bomb.png" in ln)
    assert "too large" in bomb or "decompression bomb" in bomb
    assert "truncated.jpg: corrupt or truncated" in err
    assert "README.txt: not an image or video file" in err
    assert ".hidden" not in err
    assert f"Done: {len(good)} written, {len(bad)} failed, 1 skipped." in result.stdout
    for path in good.values():
        rel = path.relative_to(src)
        written = out / rel
        assert written.is_file(), f"missing {written}"
        with Image.open(path) as a, Image.open(written) as b:
            assert a.size == b.size
    # Really translated: the PNG coffee comes back inverted.
    back = np.asarray(Image.open(out / "coffee.png"))
    assert np.abs(back.astype(int) - (255 - data.coffee().astype(int))).mean() < 15
    assert not list(out.rglob("*bomb*")) and not list(out.rglob("*.txt"))


def test_single_image_default_and_explicit_output(tmp_path, model):
    src = tmp_path / "cat.png"
    Image.fromarray(data.chelsea()).save(src)
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    result = invoke(["apply", "-m", str(model), str(src), "--provider", "cpu", "--no-progress"])
    assert result.exit_code == 0, result.output
    default = tmp_path / "cat_negative.png"  # named after the model's target domain
    assert default.is_file()
    out = tmp_path / "x" / "result.jpg"
    result = invoke(
        [
            "apply",
            "-m",
            str(model),
            str(src),
            "-o",
            str(out),
            "--side-by-side",
            "--provider",
            "cpu",
            "--no-progress",
        ]
    )
    assert result.exit_code == 0, result.output
    with Image.open(out) as im:
        assert im.format == "JPEG" and im.size == (2 * 451, 300)
    assert hashlib.sha256(src.read_bytes()).hexdigest() == digest


def test_batch_sizes_agree(tmp_path, model):
    src = tmp_path / "in"
    src.mkdir()
    for i, img in enumerate([data.coffee(), data.chelsea(), data.coffee()[:, ::-1]]):
        Image.fromarray(np.ascontiguousarray(img)).save(src / f"{i}.png")
    r1 = apply(model, [src], tmp_path / "b1",
               options=RuntimeOptions(provider="cpu", batch_size=1, progress=False), log=lambda m: None)
    r3 = apply(model, [src], tmp_path / "b3",
               options=RuntimeOptions(provider="cpu", batch_size=3, progress=False), log=lambda m: None)
    assert r1.ok and r3.ok and len(r1.written) == 3
    for i in range(3):
        a = np.asarray(Image.open(tmp_path / "b1" / f"{i}.png"))
        b = np.asarray(Image.open(tmp_path / "b3" / f"{i}.png"))
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("where", ["same", "inside"])
def test_refuses_to_write_into_input_folder(tmp_path, model, where):
    src = tmp_path / "photos"
    src.mkdir()
    Image.fromarray(data.coffee()).save(src / "a.png")
    out = src if where == "same" else src / "translated"
    result = invoke(["apply", "-m", str(model), str(src), "-o", str(out), "--provider", "cpu"])
    assert result.exit_code == 1
    assert "refusing to write into the input folder" in result.output
    assert sorted(p.name for p in src.iterdir()) == ["a.png"]


def test_refuses_to_overwrite_an_input_file(tmp_path, model):
    src = tmp_path / "a.png"
    Image.fromarray(data.coffee()).save(src)
    before = src.read_bytes()
    for out in (src, tmp_path):  # the file itself, or its own folder
        result = invoke(["apply", "-m", str(model), str(src), "-o", str(out), "--provider", "cpu"])
        assert result.exit_code == 1
        assert "refusing to overwrite input file" in result.output
    assert src.read_bytes() == before


def test_faces_mode_reports_photos_without_a_face(tmp_path, model):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(astronaut()).save(src / "astronaut.png")
    Image.fromarray(data.coffee()).save(src / "coffee.png")
    report = apply(model, [src], tmp_path / "out",
                   options=RuntimeOptions(provider="cpu", faces=True, progress=False), log=lambda m: None)
    assert report.ok and len(report.written) == 2
    assert [p.name for p in report.no_faces] == ["coffee.png"]
    coffee_out = np.asarray(Image.open(tmp_path / "out" / "coffee.png"))
    np.testing.assert_array_equal(coffee_out, data.coffee())
    astro_out = np.asarray(Image.open(tmp_path / "out" / "astronaut.png"))
    np.testing.assert_array_equal(astro_out[300:], astronaut()[300:])
    assert np.abs(astro_out[90:140, 200:250].astype(int) - astronaut()[90:140, 200:250]).mean() > 60


def test_video_keeps_fps_size_and_frame_count(tmp_path, model):
    clip = write_video(tmp_path / "clip.mp4", frames=24, size=(96, 64), fps=12.0)
    result = invoke(
        [
            "apply",
            "-m",
            str(model),
            str(clip),
            "-o",
            str(tmp_path / "o.mp4"),
            "--provider",
            "cpu",
            "--no-progress",
        ]
    )
    assert result.exit_code == 0, result.output
    assert count_frames(tmp_path / "o.mp4") == (24, 12.0, 96, 64)
    result = invoke(
        ["apply", "-m", str(model), str(clip), "--side-by-side", "--provider", "cpu", "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    assert count_frames(tmp_path / "clip_negative.mp4") == (24, 12.0, 192, 64)


def test_video_with_faces(tmp_path, model):
    import cv2

    path = tmp_path / "face.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 10.0, (256, 256))
    base = cv2.resize(astronaut()[..., ::-1], (256, 256))
    for i in range(8):  # the face drifts by a pixel a frame
        writer.write(np.ascontiguousarray(np.roll(base, i, axis=1)))
    writer.release()
    report = apply(model, [path], tmp_path / "out.mp4",
                   options=RuntimeOptions(provider="cpu", faces=True, progress=False), log=lambda m: None)
    assert report.ok, report.failed
    assert count_frames(tmp_path / "out.mp4")[0] == 8


def test_broken_video_is_reported_not_fatal(tmp_path, model):
    src = tmp_path / "in"
    src.mkdir()
    (src / "broken.mp4").write_bytes(b"not a video" * 50)
    Image.fromarray(data.coffee()).save(src / "ok.png")
    report = apply(model, [src], tmp_path / "out", options=RuntimeOptions(provider="cpu", progress=False),
                   log=lambda m: None)
    assert [p.name for p, _ in report.failed] == ["broken.mp4"]
    assert len(report.written) == 1


@pytest.mark.parametrize("error", [OSError("No space left on device"), GantoolError("encoder gave up")])
def test_video_failing_midway_is_reported_not_fatal(tmp_path, model, monkeypatch, error):
    from translator.runtime.video import VideoSink

    src = tmp_path / "in"
    src.mkdir()
    write_video(src / "clip.mp4", frames=12)
    Image.fromarray(data.coffee()).save(src / "ok.png")
    real_write = VideoSink.write

    def write_then_fail(self, frame):
        if self.frames == 5:
            raise error
        real_write(self, frame)

    monkeypatch.setattr(VideoSink, "write", write_then_fail)
    report = apply(model, [src], tmp_path / "out", RuntimeOptions(provider="cpu", progress=False),
                   log=lambda m: None)
    assert [(p.name, str(error) in why) for p, why in report.failed] == [("clip.mp4", True)]
    assert [p.name for p, _ in report.written] == ["ok.png"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["ok.png"]  # no half-written clip left


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "{tmp}/missing.onnx", "{img}"], "model file not found"),
        (["--model", "{img}", "{img}"], "is not an ONNX model"),
        (["--model", "{model}", "{tmp}/nope.png"], "no such file or folder"),
        (["--model", "{model}", "{img}", "-o", "{tmp}/o.mp4"], "must be an image"),
    ],
)
def test_bad_arguments_give_one_error_line(tmp_path, model, args, message):
    img = tmp_path / "a.png"
    Image.fromarray(data.coffee()[:40, :40]).save(img)
    args = [a.format(tmp=tmp_path, img=img, model=model) for a in args]
    result = invoke(["apply", *args, "--provider", "cpu", "--no-progress"])
    assert result.exit_code == 1
    errors = [ln for ln in result.output.splitlines() if ln.startswith("Error:")]
    assert len(errors) == 1 and message in errors[0], result.output


def test_library_errors_are_gantool_errors(tmp_path, model):
    with pytest.raises(GantoolError, match="no such file"):
        apply(model, [tmp_path / "missing"], options=RuntimeOptions(provider="cpu", progress=False))


def test_refuses_outputs_inside_any_input_folder(tmp_path, model):
    src = tmp_path / "photos"
    src.mkdir()
    Image.fromarray(data.coffee()).save(src / "a.png")
    with pytest.raises(GantoolError, match="input folder"):
        # a.png's default output would land next to it, inside the folder input.
        apply(model, [src, src / "a.png"], options=RuntimeOptions(provider="cpu", progress=False),
              log=lambda m: None)
    other = tmp_path / "other.png"
    Image.fromarray(data.coffee()).save(other)
    with pytest.raises(GantoolError, match="input folder"):
        apply(model, [src, other], src / "out", options=RuntimeOptions(provider="cpu", progress=False),
              log=lambda m: None)
    with pytest.raises(GantoolError, match="is a file"):
        apply(model, [src], other, options=RuntimeOptions(provider="cpu", progress=False),
              log=lambda m: None)
    assert sorted(p.name for p in src.iterdir()) == ["a.png"]
