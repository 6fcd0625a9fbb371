"""Where frames come from and go to: input discovery, video files, cameras, the capture
thread. Frames leave this module as RGB uint8; OpenCV's BGR stays inside it."""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from translator.data.images import MAX_PIXELS_ENV, max_pixels
from translator.errors import GantoolError

from .stages import END, Mailbox

VIDEO_EXTENSIONS = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"})


def is_video_path(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTENSIONS and not path.name.startswith(".")


def quiet_opencv() -> None:
    """OpenCV prints WARN/ERROR lines for missing cameras and bad files; we report those
    ourselves in one line. Its FFmpeg reads its log level from the environment when it
    first opens a video, so this must run before that."""
    import cv2

    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET

    try:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    except AttributeError:  # pragma: no cover - very old builds
        pass


@dataclass(frozen=True)
class VideoProps:
    fps: float
    width: int
    height: int
    frames: int


def check_frame_pixels(name: str, capture: Any) -> None:
    """Release ``capture`` (an opened ``cv2.VideoCapture``) and raise :class:`GantoolError`
    when video ``name``'s frames are over the pixel cap."""
    import cv2

    width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
    height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    pixels, cap = width * height, max_pixels()
    if pixels > cap:
        capture.release()
        raise GantoolError(f"video {name} is too large ({width}x{height} = {pixels:,} pixels "
                           f"a frame; the limit is {cap:,}, set by {MAX_PIXELS_ENV})")


class VideoReader:
    """A video file's frames in order, as RGB."""

    def __init__(self, path: str | os.PathLike) -> None:
        import cv2

        quiet_opencv()
        self.path = Path(path)
        if not self.path.is_file():
            raise GantoolError(f"video file not found: {self.path}")
        if self.path.stat().st_size == 0:
            raise GantoolError(f"{self.path} is an empty file (0 bytes), not a video")
        self.cap = cv2.VideoCapture(str(self.path))
        if not self.cap.isOpened():
            raise GantoolError(f"cannot open video {self.path} (not a video OpenCV can read, "
                               "or one without a single frame)")
        fps = self.cap.get(cv2.CAP_PROP_FPS)
        self.props = VideoProps(
            fps=fps if fps and 0 < fps < 1000 else 25.0,
            width=int(self.cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
            height=int(self.cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            frames=max(0, int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT))),
        )
        check_frame_pixels(self.path.name, self.cap)

    def __iter__(self) -> Iterator[np.ndarray]:
        while True:
            ok, frame = self.cap.read()
            if not ok or frame is None:
                return
            yield frame[..., ::-1].copy()

    def close(self) -> None:
        self.cap.release()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class VideoWriter:
    """Writes RGB frames to a video file: ``mp4v`` for MP4/MOV/M4V (what OpenCV's pip wheel
    can encode), MJPG for AVI. The size is fixed by the first frame.

    It writes ``path`` directly: :class:`~translator.runtime.video.VideoOutput` gives it a
    temporary name and renames the finished file into place. ``shown`` is the name errors
    give (the user's, not the temporary one)."""

    def __init__(self, path: str | os.PathLike, fps: float, shown: str | os.PathLike | None = None) -> None:
        self.path = Path(path)
        self.shown = Path(shown) if shown is not None else self.path
        self.fps = fps
        self.writer: Any = None
        self.size: tuple[int, int] | None = None
        self.frames = 0

    def write(self, frame: np.ndarray) -> None:
        import cv2

        h, w = frame.shape[:2]
        if self.writer is None:
            quiet_opencv()
            codec = "MJPG" if self.path.suffix.lower() == ".avi" else "mp4v"
            self.writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter.fourcc(*codec), self.fps, (w, h))
            if not self.writer.isOpened():
                self.writer = None
                raise GantoolError(f"cannot write video {self.shown} (use a .mp4 or .avi file name)")
            self.size = (w, h)
        if (w, h) != self.size:
            frame = cv2.resize(frame, self.size)
        self.writer.write(np.ascontiguousarray(frame[..., ::-1]))
        self.frames += 1

    def close(self) -> None:
        """Finish the file."""
        if self.writer is not None:
            self.writer.release()
            self.writer = None


def open_camera(index: int, timeout: float = 5.0) -> Any:
    """An opened ``cv2.VideoCapture`` for camera ``index``, or a clear error within
    ``timeout`` seconds (some backends block for long on a missing device)."""
    import cv2

    quiet_opencv()
    box: dict[str, Any] = {}

    def _open() -> None:
        cap = cv2.VideoCapture(index)
        box["cap"] = cap

    t = threading.Thread(target=_open, daemon=True, name="gantool-camera-open")
    t.start()
    t.join(timeout)
    cap = box.get("cap")
    if cap is None:
        raise GantoolError(f"camera {index} did not open within {timeout:.0f} s")
    if not cap.isOpened():
        cap.release()
        raise GantoolError(
            f"cannot open camera {index} (no camera at that index, or it is in use); "
            "try --camera N or --source VIDEO"
        )
    return cap


class CaptureThread:
    """Reads frames from a ``cv2.VideoCapture`` in the background.

    ``live=True`` (cameras): the newest frame wins: when the consumer is slower than the
    camera, old frames are dropped, so latency never grows. ``live=False`` (files standing
    in for a camera): every frame is delivered in order, through a queue of ``maxsize``;
    the reader waits for the consumer instead of dropping. The hand-over is the stages'
    :class:`~translator.runtime.stages.Mailbox`.
    A camera that returns ``max_failures`` failed reads in a row counts as ended.
    """

    def __init__(self, cap: Any, live: bool = True, maxsize: int = 1, max_failures: int = 10):
        self.cap = cap
        self.live = live
        self.mailbox = Mailbox(live, maxsize)
        self.max_failures = max_failures
        self.read_count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="gantool-capture")

    @property
    def dropped(self) -> int:
        return self.mailbox.dropped

    def start(self) -> CaptureThread:
        self._thread.start()
        return self

    def _run(self) -> None:
        failures = 0
        try:
            while not self._stop.is_set():
                ok, frame = self.cap.read()
                if not ok or frame is None:
                    failures += 1
                    # A file's first failed read is its end; a camera may hiccup.
                    if not self.live or failures >= self.max_failures:
                        break
                    time.sleep(0.01)
                    continue
                failures = 0
                self.read_count += 1
                # Stamped at capture, so latency can be measured to display.
                self.mailbox.put((time.perf_counter(), frame[..., ::-1].copy()), self._stop)
        except Exception:  # a crashing backend ends the stream rather than hanging it
            pass
        finally:
            self.mailbox.put(END, self._stop)

    def read(self, timeout: float) -> np.ndarray | None:
        """The next RGB frame; None when the source ended or sent nothing for ``timeout``."""
        stamped = self.read_stamped(timeout)
        return None if stamped is None else stamped[1]

    def read_stamped(self, timeout: float) -> tuple[float, np.ndarray] | None:
        """(``time.perf_counter()`` at capture, RGB frame), or None like :meth:`read`."""
        item = self.mailbox.get(timeout)
        if item is END:
            with contextlib.suppress(queue.Full):
                self.mailbox.queue.put_nowait(END)  # later reads see the end too
            return None
        return item

    @property
    def ended(self) -> bool:
        return not self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=1.0)
        self.cap.release()
