"""``gantool webcam``: live translation from a camera (or a video file standing in for one).

A capture thread feeds a bounded queue in which the newest frame wins, so a slow model
lowers the frame rate but never adds latency. Keys in the window: q (or Esc) quit, f faces
on/off, space original/translated, s snapshot.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from translator.errors import GantoolError
from translator.safe_write import atomic_path

from .pipeline import FaceOptions, FramePipeline
from .session import Log, ModelSession, stderr_log
from .sources import CaptureThread, VideoWriter, is_video_path, open_camera, quiet_opencv

WINDOW = "gantool webcam (q quit, f faces, space original, s snapshot)"


@dataclass
class WebcamResult:
    frames: int = 0
    dropped: int = 0
    fps: float = 0.0
    provider: str = ""
    #: Why the loop ended: "max-frames", "end of source", "camera stopped", "quit".
    ended: str = ""
    snapshots: list[Path] = field(default_factory=list)
    record: Path | None = None


def has_display() -> bool:
    """Whether a window can be opened (an OpenCV window with no display aborts the process)."""
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def draw_overlay(rgb: np.ndarray, text: str) -> np.ndarray:
    """``text`` in the top-left corner, readable on any background."""
    import cv2

    out = np.ascontiguousarray(rgb.copy())
    scale = max(0.4, out.shape[0] / 720)
    org = (8, int(24 * scale) + 4)
    cv2.putText(out, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(out, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 0), 1, cv2.LINE_AA)
    return out


def _open_source(camera: int, source: str | os.PathLike | None) -> tuple[Any, bool, str]:
    """(capture, live, description)."""
    import cv2

    if source is None:
        return open_camera(camera), True, f"camera {camera}"
    path = Path(source)
    if not path.is_file():
        raise GantoolError(f"source video not found: {path}")
    quiet_opencv()
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise GantoolError(f"cannot open video {path} (not a video OpenCV can read)")
    return cap, False, path.name


def run_webcam(
    model: str | os.PathLike,
    *,
    camera: int = 0,
    source: str | os.PathLike | None = None,
    faces: bool = False,
    detector: str = "haar",
    detector_options: dict[str, Any] | None = None,
    side_by_side: bool = False,
    record: str | os.PathLike | None = None,
    max_frames: int | None = None,
    window: bool = True,
    provider: str = "auto",
    size: int | None = None,
    input_range: str | tuple[float, float] | None = None,
    snapshot_dir: str | os.PathLike = ".",
    frame_timeout: float = 5.0,
    log: Log = stderr_log,
) -> WebcamResult:
    """Translate a live stream until quit, ``max_frames``, or the source ends."""
    import cv2

    if window and not has_display():
        raise GantoolError("no display to open a window on (DISPLAY is not set); use --no-window")
    if max_frames is not None and max_frames < 1:
        raise GantoolError("--max-frames must be at least 1")
    record_path = Path(record) if record is not None else None
    if record_path is not None:
        if not is_video_path(record_path):
            raise GantoolError(f"--record {record_path}: use a .mp4 or .avi file name")
        if source is not None and record_path.resolve() == Path(source).resolve():
            raise GantoolError("refusing to record over the source video")
    # The source first: a missing camera or file is the one error the user sees.
    cap, live, what = _open_source(camera, source)
    try:
        session = ModelSession(model, provider, size=size, input_range=input_range, log=log)
    except BaseException:
        cap.release()
        raise
    log(f"Model: {session.info.describe()}; provider: {session.provider}")

    def make_faces() -> FaceOptions:
        from .faces import create_detector

        return FaceOptions(create_detector(detector, **(detector_options or {})), smooth=True)

    try:
        pipe = FramePipeline(session, make_faces() if faces else None, side_by_side, 1)
    except BaseException:
        cap.release()
        raise
    fps_in = cap.get(cv2.CAP_PROP_FPS)
    if live:
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the driver's own queue adds latency too
    capture = CaptureThread(cap, live=live).start()
    writer = VideoWriter(record_path, fps_in if 0 < fps_in < 1000 else 25.0) if record_path else None
    result = WebcamResult(provider=session.provider, record=record_path)
    faces_on, show_original = faces, False
    fps, last = 0.0, time.perf_counter()
    # A file source is read ahead by the thread, so its timeout only guards a stuck decoder.
    timeout = frame_timeout if live else max(frame_timeout, 30.0)
    try:
        while max_frames is None or result.frames < max_frames:
            frame = capture.read(timeout=timeout if result.frames else max(timeout, 10.0))
            if frame is None:
                if not live:
                    result.ended = "end of source"
                elif result.frames == 0:
                    raise GantoolError(f"{what} opened but delivered no frames")
                else:
                    result.ended = "camera stopped"
                    log(f"{what} stopped delivering frames; stopping.")
                break
            if show_original:
                out = np.hstack([frame, frame]) if side_by_side else frame
            else:
                out = pipe.process([frame], faces=faces_on)[0]
            if writer is not None:
                writer.write(out)
            result.frames += 1
            now = time.perf_counter()
            fps = 1.0 / max(now - last, 1e-6) if fps == 0 else 0.9 * fps + 0.1 / max(now - last, 1e-6)
            last = now
            if window:
                label = f"{fps:4.1f} FPS  {pipe.model.provider_name}"
                label += "  faces" if faces_on else ""
                label += "  original" if show_original else ""
                cv2.imshow(WINDOW, draw_overlay(out, label)[..., ::-1])
                key = cv2.waitKey(1) & 0xFF
                if key in (ord("q"), 27):
                    result.ended = "quit"
                    break
                if key == ord("f"):
                    if pipe.faces is None:
                        pipe.faces = make_faces()
                        pipe.faces.smoother = _smoother()
                    faces_on = not faces_on
                elif key == ord(" "):
                    show_original = not show_original
                elif key == ord("s"):
                    result.snapshots.append(_snapshot(out, Path(snapshot_dir)))
                    log(f"Saved {result.snapshots[-1]}")
        else:
            result.ended = "max-frames"
    finally:
        capture.stop()
        result.dropped = capture.dropped
        if writer is not None:
            writer.close()
        if window:
            cv2.destroyAllWindows()
    result.fps = fps
    return result


def _smoother() -> Any:
    from .faces import BoxSmoother

    return BoxSmoother()


def _snapshot(image: np.ndarray, folder: Path) -> Path:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = folder / f"gantool-snapshot-{stamp}.png"
    n = 1
    while path.exists():
        path = folder / f"gantool-snapshot-{stamp}-{n}.png"
        n += 1
    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp)
    return path
