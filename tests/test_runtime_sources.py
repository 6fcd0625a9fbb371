"""Sources and sinks: each input kind yields its frames, times and properties from small
files made here; the kind table picks the source for a path or a camera index; sinks
round-trip through the sources."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from runtime_helpers import write_video
from test_runtime_webcam import FakeCamera

from translator.data.images import ImageReadError, read_image
from translator.errors import GantoolError
from translator.runtime import sources
from translator.runtime.sinks import SINKS, ImageSink
from translator.runtime.sources import (
    CAMERA,
    FOLDER,
    IMAGE,
    SOURCE_KINDS,
    VIDEO,
    CameraOptions,
    CameraSource,
    FolderSource,
    ImageSource,
    Source,
    SourceFrame,
    SourceKind,
    SourceProps,
    VideoSource,
    open_source,
    source_kind,
)
from translator.runtime.video import VideoSink, have_pyav
from translator.runtime.webcam import open_stream_source


def _png(path, width=10, height=6, value=(200, 30, 90)):
    Image.new("RGB", (width, height), value).save(path)
    return path


def test_image_source_yields_its_one_frame_at_time_zero(tmp_path):
    source = ImageSource(_png(tmp_path / "a.png"))
    assert source.props == SourceProps(10, 6, fps=None, frames=1, audio=False, live=False)
    frames = list(source)
    assert [f.time for f in frames] == [0.0]
    assert frames[0].image.shape == (6, 10, 3) and tuple(frames[0].image[0, 0]) == (200, 30, 90)
    assert source.name == "a.png" and source.path == tmp_path / "a.png"


def test_image_source_says_why_a_file_is_not_an_image(tmp_path):
    (tmp_path / "notes.png").write_text("hello")
    with pytest.raises(ImageReadError, match="not an image"):
        ImageSource(tmp_path / "notes.png")


def test_video_source_frames_times_and_properties(tmp_path):
    clip = write_video(tmp_path / "clip.mp4", frames=12, size=(96, 64), fps=12.0)
    with VideoSource(clip) as source:
        props = source.props
        frames = list(source)
    assert (props.width, props.height, props.fps, props.frames) == (96, 64, 12.0, 12)
    assert props.audio is (False if have_pyav() else None) and not props.live
    assert [round(f.time * 12) for f in frames] == list(range(12))
    assert all(f.image.shape == (64, 96, 3) and f.image.dtype == np.uint8 for f in frames)
    # RGB, not OpenCV's BGR: red is the clip's third (BGR) channel, 80 + i.
    assert all(abs(float(f.image[..., 0].mean()) - (80 + i)) < 6 for i, f in enumerate(frames))


def test_video_source_knows_a_sound_track(tmp_path):
    pytest.importorskip("av")
    from test_runtime_video import make_clip_with_audio

    with VideoSource(make_clip_with_audio(tmp_path / "tone.mp4")) as source:
        assert source.props.audio is True and source.props.frames == 24


def test_video_source_refuses_what_is_not_a_video(tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "junk.mp4").write_bytes(b"not a video at all" * 10)
    with pytest.raises(GantoolError, match="empty file"):
        VideoSource(tmp_path / "empty.mp4")
    with pytest.raises(GantoolError, match="cannot open video"):
        VideoSource(tmp_path / "junk.mp4")


def test_folder_source_lists_members_and_yields_their_frames_in_order(tmp_path):
    folder = tmp_path / "in"
    (folder / "b").mkdir(parents=True)
    _png(folder / "a.png", value=(10, 10, 10))
    _png(folder / "b" / "c.png", value=(20, 20, 20))
    write_video(folder / "clip.mp4", frames=3, size=(32, 24))
    (folder / "notes.txt").write_text("x")
    _png(folder / ".hidden.png")
    source = FolderSource(folder)
    assert [(p.relative_to(folder).as_posix(), k) for p, k in source.members] == [
        ("a.png", IMAGE), ("b/c.png", IMAGE), ("clip.mp4", VIDEO)]
    assert [(p.name, why) for p, why in source.skipped] == [("notes.txt", "not an image or video file")]
    assert source.props.frames is None  # a video's count is known only once it is opened
    frames = list(source)
    assert len(frames) == 5 and [int(f.image[0, 0, 0]) for f in frames[:2]] == [10, 20]


def test_folder_of_images_knows_its_frame_count(tmp_path):
    for i in range(3):
        _png(tmp_path / f"{i}.png")
    assert FolderSource(tmp_path).props == SourceProps(None, None, frames=3, audio=False)


def test_camera_source_yields_live_frames_until_the_camera_stops(monkeypatch):
    cam = FakeCamera(4, after="fail")
    opened: list[tuple[int, float]] = []

    def open_camera(index: int, timeout: float) -> FakeCamera:
        opened.append((index, timeout))
        return cam

    monkeypatch.setattr(sources, "open_camera", open_camera)
    source = CameraSource(2, CameraOptions(open_timeout=3.0, frame_timeout=0.5, max_failures=2))
    assert opened == [(2, 3.0)] and source.name == "camera 2" and source.stall_timeout == 0.5
    assert source.props == SourceProps(None, None, fps=None, frames=None, audio=False, live=True)
    frames = list(source)
    assert [int(f.image[0, 0, 0]) for f in frames] == [0, 1, 2, 3]  # numbered, in RGB
    times = [f.time for f in frames]
    assert times == sorted(times) and times[0] >= 0
    source.close()
    assert cam.released


def test_kind_table_picks_the_source_for_each_kind_of_input(tmp_path, monkeypatch):
    image = _png(tmp_path / "photo.PNG")
    clip = write_video(tmp_path / "clip.mp4", frames=2, size=(32, 24))
    (tmp_path / "notes.txt").write_text("x")
    assert [source_kind(spec) for spec in (0, 7, tmp_path, clip, image, tmp_path / "notes.txt")] == [
        CAMERA, CAMERA, FOLDER, VIDEO, IMAGE, None]
    assert source_kind(tmp_path / "notes.txt", fallback=IMAGE) is IMAGE
    monkeypatch.setattr(sources, "open_camera", lambda index, timeout: FakeCamera(1))
    opened = [open_source(spec) for spec in (1, tmp_path, clip, image)]
    assert [type(s) for s in opened] == [CameraSource, FolderSource, VideoSource, ImageSource]
    for source in opened:
        source.close()
    with pytest.raises(GantoolError, match="not an image, video, folder or camera index"):
        open_source(tmp_path / "notes.txt")


def test_a_new_kind_is_one_class_and_one_row(tmp_path, monkeypatch):
    class Solid(Source):
        def __init__(self, spec: str) -> None:
            self.name, self.props = spec, SourceProps(4, 2, fps=1.0, frames=2)

        def __iter__(self):
            for i in range(2):
                yield SourceFrame(np.full((2, 4, 3), i, np.uint8), float(i))

    row = SourceKind("solid", lambda spec: str(spec).startswith("solid:"), Solid, "a solid colour")
    monkeypatch.setattr(sources, "SOURCE_KINDS", (row, *SOURCE_KINDS))
    source = open_source("solid:grey")
    assert isinstance(source, Solid) and [f.time for f in source] == [0.0, 1.0]


def test_stream_source_is_a_camera_or_a_video_file(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "open_camera", lambda index, timeout: FakeCamera(1))
    assert isinstance(open_stream_source(0), CameraSource)
    clip = write_video(tmp_path / "clip.mp4", frames=2, size=(32, 24)).rename(tmp_path / "clip.bin")
    with open_stream_source(clip) as source:
        assert isinstance(source, VideoSource) and len(list(source)) == 2
    with pytest.raises(GantoolError, match="source video not found"):
        open_stream_source(tmp_path / "missing.mp4")


def test_image_sink_round_trips_and_names_outputs(tmp_path):
    image = np.random.default_rng(0).integers(0, 255, (6, 10, 3), dtype=np.uint8)
    sink = ImageSink(tmp_path / "out.png")
    sink.write(image)
    sink.close()
    assert np.array_equal(read_image(tmp_path / "out.png"), image) and sink.frames == 1
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]  # no temporary left
    assert ImageSink.output_path(tmp_path / "a.gif").name == "a.png"
    assert ImageSink.output_path(tmp_path / "a.JPG").name == "a.JPG"
    assert SINKS == {IMAGE: ImageSink, VIDEO: VideoSink}


def test_video_sink_round_trips_through_the_video_source(tmp_path):
    clip = write_video(tmp_path / "in.mp4", frames=6, size=(48, 32), fps=8.0)
    with VideoSource(clip) as source:
        sink = VideoSink.open_for(VideoSink.output_path(tmp_path / "out.avi"), source)
        for frame in source:
            sink.write(frame.image)
        sink.close()
    with VideoSource(tmp_path / "out.mp4") as back:
        assert (back.props.width, back.props.height, back.props.fps) == (48, 32, 8.0)
        assert len(list(back)) == 6


def test_an_aborted_video_sink_leaves_nothing(tmp_path):
    sink = VideoSink(tmp_path / "out.mp4", 10.0)
    sink.write(np.zeros((24, 32, 3), np.uint8))
    sink.abort()
    assert list(tmp_path.iterdir()) == []


def test_apply_plans_each_file_by_its_kind_row(tmp_path):
    from translator.runtime.apply import ApplyReport, plan_jobs

    folder = tmp_path / "in"
    folder.mkdir()
    Image.new("P", (4, 4)).save(folder / "anim.gif")
    _png(folder / "a.png")
    write_video(folder / "clip.avi", frames=2, size=(32, 24))
    (folder / "notes.txt").write_text("x")
    report = ApplyReport()
    jobs = plan_jobs([folder], None, "neg", report)
    out = tmp_path / "in_neg"
    assert [(j.src.name, j.kind, j.dst) for j in jobs] == [
        ("a.png", IMAGE, out / "a.png"), ("anim.gif", IMAGE, out / "anim.png"),
        ("clip.avi", VIDEO, out / "clip.mp4")]
    assert [p.name for p, _ in report.skipped] == ["notes.txt"]
    with pytest.raises(GantoolError, match=r"must be a video \(.mp4, .avi\) file for input clip.avi"):
        plan_jobs([folder / "clip.avi"], tmp_path / "x.png", "neg", ApplyReport())
