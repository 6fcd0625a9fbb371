"""``gantool webcam`` without a camera or display: a video file stands in, fakes test the
capture thread's newest-wins queue and a camera that stops or stalls."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest
from runtime_helpers import count_frames, invoke, make_invert_model, write_video

from translator.errors import GantoolError
from translator.runtime import sources, webcam
from translator.runtime.capture import CaptureThread
from translator.runtime.options import RuntimeOptions
from translator.runtime.sources import CameraOptions, CameraSource, Source, SourceFrame, SourceProps
from translator.runtime.webcam import WebcamOptions


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return make_invert_model(tmp_path_factory.mktemp("model") / "invert.onnx")


class FakeCamera:
    """Delivers numbered frames (the number is in pixel [0, 0]); then, depending on
    ``after``, fails every read ("fail") or blocks until released ("block")."""

    def __init__(self, frames: int, after: str = "fail") -> None:
        self.frames, self.after, self.n = frames, after, 0
        self.release_event = threading.Event()
        self.released = False

    def read(self):
        if self.n < self.frames:
            frame = np.zeros((24, 32, 3), np.uint8)
            frame[0, 0, 2] = self.n  # BGR: red channel after conversion to RGB
            self.n += 1
            return True, frame
        if self.after == "block":
            self.release_event.wait()
        return False, None

    def get(self, prop):
        return 0.0

    def set(self, prop, value):
        return True

    def isOpened(self):  # noqa: N802 - cv2's name
        return True

    def release(self):
        self.released = True
        self.release_event.set()


def _camera(index: int = 0, **options) -> CameraSource:
    """Camera ``index`` (a fake, patched in at ``sources.open_camera``) with ``options``."""
    return CameraSource(index, CameraOptions(**options))


class FakeFile(Source):
    """A fake camera's frames read as a file's are: in order, ending at the first failed read."""

    def __init__(self, cam: FakeCamera) -> None:
        self.cam, self.name, self.props = cam, "fake.mp4", SourceProps(32, 24, fps=10.0)

    def __iter__(self):
        while (got := self.cam.read())[0]:
            yield SourceFrame(got[1][..., ::-1].copy(), 0.0)

    def close(self) -> None:
        self.cam.release()


def test_source_video_no_window_records_50_frames(tmp_path, model):
    clip = write_video(tmp_path / "clip.mp4", frames=60, size=(96, 64), fps=15.0)
    out = tmp_path / "out.mp4"
    result = invoke(
        [
            "webcam",
            "--model",
            str(model),
            "--source",
            str(clip),
            "--no-window",
            "--max-frames",
            "50",
            "--record",
            str(out),
            "--provider",
            "cpu",
        ]
    )
    assert result.exit_code == 0, result.output
    assert "50 frames" in result.stdout and "max-frames" in result.stdout
    assert count_frames(out) == (50, 15.0, 96, 64)
    assert "Nothing was shown or written" not in result.stdout


def test_no_window_without_record_says_nothing_is_kept(tmp_path, model):
    clip = write_video(tmp_path / "clip.mp4", frames=4, size=(32, 24))
    result = invoke(["webcam", "-m", str(model), "--source", str(clip), "--no-window",
                     "--provider", "cpu"])
    assert result.exit_code == 0, result.output
    assert "Nothing was shown or written (--no-window without --record)" in result.stdout
    assert "4 frames" in result.stdout and sorted(os.listdir(tmp_path)) == ["clip.mp4"]


def test_file_source_is_processed_in_full_and_in_order(tmp_path, model):
    clip = write_video(tmp_path / "clip.mp4", frames=20, size=(64, 48), fps=10.0)
    out = tmp_path / "all.mp4"
    res = webcam.run_webcam(model, clip, RuntimeOptions(provider="cpu", side_by_side=True),
                            WebcamOptions(window=False, record=out), log=lambda m: None)
    assert (res.frames, res.dropped, res.ended) == (20, 0, "end of source")
    assert count_frames(out) == (20, 10.0, 128, 48)


def test_file_source_over_the_pixel_cap_is_refused(tmp_path, model, monkeypatch):
    clip = write_video(tmp_path / "clip.mp4", frames=5, size=(96, 64), fps=10.0)
    monkeypatch.setenv("GANTOOL_MAX_PIXELS", str(96 * 64 - 1))
    with pytest.raises(GantoolError, match="too large.*GANTOOL_MAX_PIXELS"):
        webcam.run_webcam(model, clip, RuntimeOptions(provider="cpu"),
                          WebcamOptions(window=False, record=tmp_path / "out.mp4"), log=lambda m: None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def _stop_recording_after_three_frames(monkeypatch, stop: BaseException) -> None:
    write = webcam.VideoSink.write

    def write_then_stop(self, frame):
        if self.frames == 3:
            raise stop
        write(self, frame)

    monkeypatch.setattr(webcam.VideoSink, "write", write_then_stop)


def test_a_failed_recording_leaves_no_file(tmp_path, model, monkeypatch):
    clip = write_video(tmp_path / "clip.mp4", frames=20, size=(64, 48), fps=10.0)
    _stop_recording_after_three_frames(monkeypatch, OSError("disk full"))
    with pytest.raises(OSError):
        webcam.run_webcam(model, clip, RuntimeOptions(provider="cpu"),
                          WebcamOptions(window=False, record=tmp_path / "out.mp4"), log=lambda m: None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def test_ctrl_c_keeps_what_was_recorded(tmp_path, model, monkeypatch):
    clip = write_video(tmp_path / "clip.mp4", frames=20, size=(64, 48), fps=10.0)
    _stop_recording_after_three_frames(monkeypatch, KeyboardInterrupt())
    result = webcam.run_webcam(model, clip, RuntimeOptions(provider="cpu"),
                               WebcamOptions(window=False, record=tmp_path / "out.mp4"), log=lambda m: None)
    assert result.ended == "interrupted"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "out.mp4"]
    assert count_frames(tmp_path / "out.mp4")[0] == 3


def test_capture_thread_newest_frame_wins(monkeypatch):
    cam = FakeCamera(30, after="block")
    monkeypatch.setattr(sources, "open_camera", lambda index, timeout: cam)
    thread = CaptureThread(_camera(), maxsize=1).start()
    while thread.read_count < 30:  # the consumer is "busy" while the camera runs on
        threading.Event().wait(0.005)
    frame = thread.read(timeout=2)
    assert frame is not None and frame[0, 0, 0] == 29  # the newest, not the oldest
    assert thread.dropped == 29
    thread.stop()
    assert cam.released and thread.read(timeout=2) is None


def test_capture_thread_for_files_drops_nothing():
    cam = FakeCamera(25)
    thread = CaptureThread(FakeFile(cam), maxsize=1).start()
    seen = []
    while (frame := thread.read(timeout=5)) is not None:
        seen.append(int(frame[0, 0, 0]))
    assert seen == list(range(25)) and thread.dropped == 0
    assert thread.read(timeout=1) is None  # the end stays visible
    thread.stop()


def test_camera_that_stops_delivering_ends_cleanly(tmp_path, model, monkeypatch):
    cam = FakeCamera(7, after="fail")
    monkeypatch.setattr(sources, "open_camera", lambda index, timeout: cam)
    logs: list[str] = []
    out = tmp_path / "rec.mp4"
    res = webcam.run_webcam(model, 3, RuntimeOptions(provider="cpu"),
                            WebcamOptions(window=False, record=out), log=logs.append)
    assert res.ended == "camera stopped" and 1 <= res.frames <= 7
    assert any("stopped delivering frames" in m for m in logs)
    assert cam.released and count_frames(out)[0] == res.frames


def test_camera_that_stalls_does_not_hang(model, monkeypatch):
    cam = FakeCamera(3, after="block")
    monkeypatch.setattr(sources, "open_camera", lambda index, timeout: cam)
    res = webcam.run_webcam(model, _camera(0, frame_timeout=0.3), RuntimeOptions(provider="cpu"),
                            WebcamOptions(window=False), log=lambda m: None)
    assert res.ended == "camera stopped" and 1 <= res.frames <= 3


def test_camera_that_sends_nothing_is_an_error(model, monkeypatch):
    cam = FakeCamera(0, after="fail")
    monkeypatch.setattr(sources, "open_camera", lambda index, timeout: cam)
    with pytest.raises(GantoolError, match="delivered no frames"):
        webcam.run_webcam(model, 0, RuntimeOptions(provider="cpu"), WebcamOptions(window=False),
                          log=lambda m: None)


def test_missing_camera_is_one_clear_error(model):
    if os.path.exists("/dev/video9"):
        pytest.skip("this machine has a /dev/video9")
    result = invoke(["webcam", "--model", str(model), "--camera", "9", "--no-window", "--provider", "cpu"])
    assert result.exit_code == 1
    errors = [ln for ln in result.output.splitlines() if ln.startswith("Error:")]
    assert len(errors) == 1 and "cannot open camera 9" in errors[0]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--source", "{tmp}/missing.mp4", "--no-window"], "source video not found"),
        (["--source", "{clip}", "--no-window", "--record", "{tmp}/x.txt"], "--record"),
        (["--source", "{clip}", "--no-window", "--record", "{clip}"], "record over the source"),
    ],
)
def test_bad_webcam_arguments(tmp_path, model, extra, message):
    clip = write_video(tmp_path / "c.mp4", frames=3)
    args = [a.format(tmp=tmp_path, clip=clip) for a in extra]
    result = invoke(["webcam", "--model", str(model), *args, "--provider", "cpu"])
    assert result.exit_code == 1
    assert message in result.output


def test_window_without_display_is_refused(tmp_path, model, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(webcam.sys, "platform", "linux")
    with pytest.raises(GantoolError, match="--no-window"):
        webcam.run_webcam(model, tmp_path / "c.mp4", RuntimeOptions(provider="cpu"))


def test_faces_on_file_source(tmp_path, model):
    import cv2
    from runtime_helpers import astronaut

    path = tmp_path / "face.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 10.0, (256, 256))
    base = cv2.resize(astronaut()[..., ::-1], (256, 256))
    for i in range(5):
        writer.write(np.ascontiguousarray(np.roll(base, 2 * i, axis=0)))
    writer.release()
    res = webcam.run_webcam(model, path, RuntimeOptions(faces=True, provider="cpu"),
                            WebcamOptions(window=False), log=lambda m: None)
    assert res.frames == 5


def test_overlay_draws_text():
    img = np.zeros((120, 200, 3), np.uint8)
    out = webcam.draw_overlay(img, "12.0 FPS cpu")
    assert out.shape == img.shape and out.any() and not img.any()


def _read_rgb(path) -> list[np.ndarray]:
    import cv2

    cap, frames = cv2.VideoCapture(str(path)), list[np.ndarray]()
    while True:
        ok, frame = cap.read()
        if not ok:
            return frames
        frames.append(frame[..., ::-1])


def test_no_translated_face_outlives_a_cut(tmp_path, model):
    """A face, then a cut to a scene without one: the held boxes end at the cut (they
    used to paste the translated patch for about five more frames)."""
    import cv2
    from runtime_helpers import astronaut
    from skimage import data

    face = cv2.resize(astronaut(), (256, 256))
    scene = cv2.resize(data.coffee(), (256, 256))
    clip = tmp_path / "cut.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter.fourcc(*"mp4v"), 10.0, (256, 256))
    for frame in [face] * 6 + [scene] * 6:
        writer.write(np.ascontiguousarray(frame[..., ::-1]))
    writer.release()
    out = tmp_path / "out.mp4"
    webcam.run_webcam(model, clip, RuntimeOptions(faces=True, provider="cpu"),
                      WebcamOptions(record=out, window=False, detect_every=3), log=lambda m: None)
    given, recorded = _read_rgb(clip), _read_rgb(out)
    assert len(recorded) == len(given) == 12
    # The largest change in any 16x16 block: a pasted patch, not the codec's noise.
    change = [float(np.abs(r.astype(np.int16) - g).reshape(16, 16, 16, 16, 3)
                    .mean(axis=(1, 3, 4)).max()) for r, g in zip(recorded, given, strict=True)]
    assert min(change[:6]) > 40, change  # the face was translated (inverted) before the cut
    assert max(change[6:]) < 15, change  # and nothing after it


def test_a_still_image_stands_in_as_a_one_frame_source(tmp_path, model):
    from PIL import Image

    Image.new("RGB", (40, 30), (10, 200, 30)).save(tmp_path / "still.png")
    out = tmp_path / "out.mp4"
    res = webcam.run_webcam(model, tmp_path / "still.png", RuntimeOptions(provider="cpu"),
                            WebcamOptions(window=False, record=out), log=lambda m: None)
    assert (res.frames, res.ended) == (1, "end of source")
    assert count_frames(out) == (1, 25.0, 40, 30)
    (tmp_path / "bad.png").write_text("not an image")
    with pytest.raises(GantoolError, match="cannot read .*bad.png: not an image"):
        webcam.run_webcam(model, tmp_path / "bad.png", RuntimeOptions(provider="cpu"),
                          WebcamOptions(window=False), log=lambda m: None)


def test_a_recording_that_cannot_start_lets_go_of_the_camera(tmp_path, model, monkeypatch):
    cam = FakeCamera(3)
    monkeypatch.setattr(sources, "open_camera", lambda index, timeout: cam)
    (tmp_path / "file").write_text("x")
    with pytest.raises(OSError):
        webcam.run_webcam(model, 0, RuntimeOptions(provider="cpu"),
                          WebcamOptions(window=False, record=tmp_path / "file" / "out.mp4"),
                          log=lambda m: None)
    assert cam.released
