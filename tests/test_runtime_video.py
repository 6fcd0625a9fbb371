"""Videos from ``gantool apply``: H.264 MP4 with the source's audio through PyAV, mp4v with
a note without it, truncated inputs reported (exit 1, no file), FFmpeg's own log quiet."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from runtime_helpers import count_frames, invoke, make_invert_model, write_video

av = pytest.importorskip("av")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return make_invert_model(tmp_path_factory.mktemp("model") / "invert.onnx")


def make_clip_with_audio(path: Path, frames: int = 24, fps: int = 12, size=(66, 48)) -> Path:
    """An MPEG-4 video track and an AAC tone track (as long as the video), made with PyAV;
    the index comes first (faststart), as in files made for streaming."""
    w, h = size
    with av.open(str(path), mode="w", options={"movflags": "faststart"}) as container:
        video = container.add_stream("mpeg4", rate=fps)
        video.width, video.height, video.pix_fmt = w, h, "yuv420p"
        audio = container.add_stream("aac", rate=44100)
        audio.layout = "mono"
        for i in range(frames):
            img = np.full((h, w, 3), (i * 10) % 256, np.uint8)
            for packet in video.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        t = np.arange(int(44100 * frames / fps)) / 44100
        tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
        for start in range(0, tone.shape[1], 1024):
            frame = av.AudioFrame.from_ndarray(tone[:, start:start + 1024], format="fltp", layout="mono")
            frame.sample_rate = 44100
            for packet in audio.encode(frame):
                container.mux(packet)
        for packet in audio.encode():
            container.mux(packet)
    return path


def probe(path: Path) -> dict:
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        found = {"codec": video.codec_context.name, "fps": video.average_rate,
                 "size": (video.width, video.height),
                 "frames": sum(1 for _ in container.decode(video))}
    with av.open(str(path)) as container:
        audio = [s.codec_context.name for s in container.streams.audio]
        packets = sum(1 for p in container.demux(container.streams.audio[0]) if p.size) if audio else 0
    return {**found, "audio": audio, "audio_packets": packets}


def test_video_with_audio_comes_out_h264_with_the_audio(tmp_path, model):
    clip = make_clip_with_audio(tmp_path / "clip.mp4")
    out = tmp_path / "out" / "clip.mp4"
    result = invoke(["apply", "--model", str(model), str(clip), "-o", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    got, source = probe(out), probe(clip)
    assert got["codec"] == "h264" and got["audio"] == ["aac"]
    assert got["audio_packets"] == source["audio_packets"] > 0  # every audio packet carried
    assert (got["frames"], got["fps"], got["size"]) == (24, Fraction(12), (66, 48))
    # The frames really are translated (inverted): frame 0 is grey 0 -> about 255.
    with av.open(str(out)) as container:
        first = next(container.decode(video=0)).to_ndarray(format="rgb24")
    assert first.mean() > 240
    assert [p.name for p in out.parent.iterdir()] == ["clip.mp4"]  # no temporary left


def test_without_pyav_it_writes_mp4v_with_a_note(tmp_path, model, monkeypatch):
    monkeypatch.setitem(sys.modules, "av", None)  # import av now raises ImportError
    clip = write_video(tmp_path / "clip.mp4", frames=20, size=(64, 48), fps=10.0)
    out = tmp_path / "clip_out.mp4"
    result = invoke(["apply", "--model", str(model), str(clip), "-o", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    notes = [line for line in result.output.splitlines() if "PyAV is not installed" in line]
    assert len(notes) == 1 and "mp4v" in notes[0]
    data = out.read_bytes()  # the sample entry in the MP4 index names the codec
    assert b"mp4v" in data and b"avc1" not in data
    assert count_frames(out) == (20, 10.0, 64, 48)


def test_truncated_video_is_reported_and_nothing_is_written(tmp_path, model):
    clip = make_clip_with_audio(tmp_path / "clip.mp4", frames=60)
    broken = tmp_path / "in" / "broken.mp4"
    broken.parent.mkdir()
    data = clip.read_bytes()
    broken.write_bytes(data[: len(data) // 2])  # index intact (it comes first), frames cut
    out = tmp_path / "out"
    # A fresh process: FFmpeg's log level is fixed when OpenCV first opens a video, and
    # its lines go to file descriptor 2, which only a real process shows.
    proc = subprocess.run(
        [sys.executable, "-m", "translator.cli", "apply", "--model", str(model), str(broken),
         "-o", str(out), "--no-progress", "--provider", "cpu"],
        capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 1, proc.stderr
    assert re.search(r"broken\.mp4: truncated video: only \d+ of the 60 frames", proc.stderr), proc.stderr
    assert not out.exists() or list(out.iterdir()) == []
    # FFmpeg's own lines (e.g. "[mov,mp4,... @ 0x...] ...") stay out of the terminal.
    assert "@ 0x" not in proc.stderr + proc.stdout, proc.stderr


@pytest.mark.parametrize("kind", ["no frames", "0 bytes"])
def test_a_video_without_frames_is_reported(tmp_path, model, kind):
    import cv2

    clip = tmp_path / "in" / "empty.mp4"
    clip.parent.mkdir()
    if kind == "no frames":  # a container with a video track and no frame in it
        cv2.VideoWriter(str(clip), cv2.VideoWriter.fourcc(*"mp4v"), 12.0, (64, 48)).release()
        assert clip.stat().st_size > 0
    else:
        clip.write_bytes(b"")
    out = tmp_path / "out"
    result = invoke(["apply", "--model", str(model), str(clip), "-o", str(out), "--no-progress"])
    assert result.exit_code == 1
    assert re.search(r"failed  .*empty\.mp4: .*(without a single frame|empty file)", result.output), \
        result.output
    assert not out.exists() or list(out.iterdir()) == []


def test_frame_count_problems():
    from translator.runtime.apply import _frame_count_problem

    assert "no frames" in (_frame_count_problem(0, 0) or "")
    assert "only 27 of the 60" in (_frame_count_problem(27, 60) or "")
    assert _frame_count_problem(59, 60) is None and _frame_count_problem(3, None) is None
    assert _frame_count_problem(60, 60) is None and _frame_count_problem(59, 60) is None
    assert _frame_count_problem(12, 0) is None  # a stream that declares no count
