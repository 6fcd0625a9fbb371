"""Writing videos people can play: H.264 MP4 with the source's audio through PyAV (FFmpeg's
maintained Python binding), or OpenCV's mp4v when PyAV is missing.

Files are written under a hidden temporary name in the target folder and renamed into
place by :meth:`VideoSink.close`, so a failed or interrupted job leaves no half video
under the real name; :meth:`VideoSink.abort` removes the temporary file.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from translator.errors import GantoolError

from ..safe_write import temporary_sibling
from .session import Log
from .sources import FALLBACK_FPS, Source, quiet_opencv


def have_pyav() -> bool:
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


def quiet_libav() -> None:
    """FFmpeg prints its own warnings (e.g. 'moov atom not found') to stderr; gantool
    reports problems in one line of its own instead. Covers PyAV and OpenCV's FFmpeg."""
    quiet_opencv()
    if have_pyav():
        import av.logging

        av.logging.set_level(None)


class VideoSink:
    """Frames (RGB uint8) in, a finished video file out on :meth:`close`."""

    @classmethod
    def output_path(cls, path: Path) -> Path:
        """Where a video made from ``path`` is written: as MP4."""
        return path.with_suffix(".mp4")

    @classmethod
    def open_for(cls, path: Path, source: Source, log: Log | None = None) -> VideoSink:
        """A sink for ``source``'s frames: its frame rate, its audio carried over."""
        audio_from = source.path if source.props.audio is not False else None
        return cls(path, source.props.fps or FALLBACK_FPS, audio_from=audio_from, log=log)

    def __init__(self, path: str | os.PathLike, fps: float, audio_from: Path | None = None,
                 log: Log | None = None) -> None:
        self.path = Path(path)
        self.tmp = temporary_sibling(self.path)
        self.fps = fps
        self.audio_from = audio_from
        self.frames = 0
        self.audio = "none"  # "copied", "none" (source has none), or why it was not copied
        self.path.parent.mkdir(parents=True, exist_ok=True)
        mp4 = self.path.suffix.lower() in (".mp4", ".m4v", ".mov")
        self.backend = "pyav" if mp4 and have_pyav() else "opencv"
        if mp4 and self.backend == "opencv" and log is not None:
            log("Note: PyAV is not installed (pip install av): writing mp4v video without audio, "
                "which browsers may not play.")
        self._writer: Any = None

    @property
    def codec(self) -> str:
        return "h264" if self.backend == "pyav" else "mp4v"

    def write(self, frame: np.ndarray) -> None:
        if self._writer is None:
            if self.backend == "pyav":
                self._writer = _AvWriter(self.tmp, self.fps, frame, self.audio_from)
            else:
                self._writer = _CvWriter(self.tmp, self.fps, self.audio_from, shown=self.path)
        self._writer.write(frame)
        self.frames += 1

    def close(self) -> None:
        """Finish the file (audio included) and move it to its real name."""
        if self._writer is None:
            raise GantoolError(f"no frames to write to {self.path}")
        try:
            self.audio = self._writer.close()
            os.replace(self.tmp, self.path)
        finally:
            self.tmp.unlink(missing_ok=True)

    def abort(self) -> None:
        if self._writer is not None:
            try:
                self._writer.close()
            except Exception:  # noqa: BLE001 - the file is being thrown away anyway
                pass
        self.tmp.unlink(missing_ok=True)


class _CvWriter:
    """OpenCV's encoders: ``mp4v`` for MP4/MOV/M4V (what its pip wheel can encode), MJPG for
    AVI; no audio. The size is fixed by the first frame. ``shown`` is the name errors give
    (the user's, not the temporary one)."""

    def __init__(self, path: Path, fps: float, audio_from: Path | None, shown: Path) -> None:
        self.path, self.fps, self.audio_from, self.shown = path, fps, audio_from, shown
        self.writer: Any = None
        self.size: tuple[int, int] | None = None

    def _open(self, width: int, height: int) -> None:
        import cv2

        quiet_opencv()
        codec = "MJPG" if self.path.suffix.lower() == ".avi" else "mp4v"
        self.writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter.fourcc(*codec), self.fps,
                                      (width, height))
        if not self.writer.isOpened():
            self.writer = None
            raise GantoolError(f"cannot write video {self.shown} (use a .mp4 or .avi file name)")
        self.size = (width, height)

    def write(self, frame: np.ndarray) -> None:
        import cv2

        h, w = frame.shape[:2]
        if self.writer is None:
            self._open(w, h)
        if (w, h) != self.size:
            frame = cv2.resize(frame, self.size)
        self.writer.write(np.ascontiguousarray(frame[..., ::-1]))

    def close(self) -> str:
        if self.writer is not None:
            self.writer.release()
            self.writer = None
        return "not copied (needs PyAV)" if self.audio_from is not None else "none"


class _AvWriter:
    """libx264 in yuv420p (what browsers play; needs even sides, so odd ones are padded)."""

    def __init__(self, path: Path, fps: float, first: np.ndarray, audio_from: Path | None) -> None:
        import av

        self.rate = Fraction(fps).limit_denominator(1001)
        self.container = av.open(str(path), mode="w")
        self.stream = self.container.add_stream("libx264", rate=self.rate)
        h, w = first.shape[:2]
        self.size = (w, h)
        self.stream.width, self.stream.height = w + w % 2, h + h % 2
        self.stream.pix_fmt = "yuv420p"
        self.stream.time_base = 1 / self.rate
        self.stream.options = {"crf": "20", "preset": "veryfast", "movflags": "+faststart"}
        self.count = 0
        # The audio track is declared now: streams cannot be added once packets are muxed.
        self.audio_from, self.audio_stream, self.audio_note = audio_from, None, "none"
        if audio_from is not None:
            try:
                with av.open(str(audio_from)) as source:
                    if source.streams.audio:
                        self.audio_stream = self.container.add_stream_from_template(
                            source.streams.audio[0])
            except (av.FFmpegError, ValueError) as exc:
                self.audio_note = f"not copied ({type(exc).__name__}: {str(exc)[:100]})"

    def write(self, frame: np.ndarray) -> None:
        import av
        import cv2

        if (frame.shape[1], frame.shape[0]) != self.size:
            frame = cv2.resize(frame, self.size)
        pad_h, pad_w = self.stream.height - frame.shape[0], self.stream.width - frame.shape[1]
        if pad_h or pad_w:
            frame = np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
        video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        video_frame.pts = self.count
        self.count += 1
        for packet in self.stream.encode(video_frame):
            self.container.mux(packet)

    def close(self) -> str:
        try:
            for packet in self.stream.encode():
                self.container.mux(packet)
            if self.audio_stream is not None and self.audio_from is not None:
                self.audio_note = _copy_audio(self.audio_from, self.container, self.audio_stream)
        finally:
            self.container.close()
        return self.audio_note


def _copy_audio(source_path: Path, container: Any, out: Any) -> str:
    """Copy the source's first audio track into ``out`` without re-encoding."""
    import av

    try:
        with av.open(str(source_path)) as source:
            for packet in source.demux(source.streams.audio[0]):
                if packet.dts is None:  # the demuxer's flush packet
                    continue
                packet.stream = out
                container.mux(packet)
    except (av.FFmpegError, ValueError) as exc:
        return f"not copied ({type(exc).__name__}: {str(exc)[:100]})"
    return "copied"
