"""``gantool webcam``: live translation from a camera (or a video file standing in for one).

Capture, face detection and inference run in their own threads with newest-wins
hand-overs between them, so a slow model lowers the frame rate but never adds latency.
Keys in the window: q (or Esc) quit, f faces on/off, space original/translated, s snapshot.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from translator.cpu import usable_cores
from translator.errors import GantoolError
from translator.safe_write import atomic_path

from .options import RuntimeOptions
from .pipeline import FaceOptions, FramePipeline
from .session import Log, stderr_log
from .sources import CaptureThread, check_frame_pixels, is_video_path, open_camera, quiet_opencv
from .stages import END, Frame, LatencyStats, Mailbox, Stage
from .video import VideoOutput

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
    #: Frames over the loop's wall time (start-up included).
    mean_fps: float = 0.0
    #: Median seconds from capture to display (or encoding).
    latency: float = 0.0
    #: Median seconds per stage ("detect", "translate").
    stage_seconds: dict[str, float] = field(default_factory=dict)


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
    check_frame_pixels(path.name, cap)
    return cap, False, path.name


def inference_threads(faces: bool, cores: int | None = None) -> int:
    """onnxruntime threads for a stream. With faces on 4 or more cores, one core is left
    to capture and detection so they run beside inference instead of waiting for it.
    Below 4 cores that would cost a third to half of the inference speed for a detector
    that runs on every 3rd frame only, so inference takes every core (its threads do not
    spin, so the detector still gets time when it needs it)."""
    cores = cores or usable_cores()
    return cores - 1 if faces and cores >= 4 else cores


@dataclass
class _Controls:
    """What the window's keys switch; read by the stage threads."""

    faces: bool
    original: bool = False


def run_webcam(
    model: str | os.PathLike,
    options: RuntimeOptions = RuntimeOptions(),
    *,
    camera: int = 0,
    source: str | os.PathLike | None = None,
    record: str | os.PathLike | None = None,
    max_frames: int | None = None,
    window: bool = True,
    snapshot_dir: str | os.PathLike = ".",
    frame_timeout: float = 5.0,
    detect_every: int = 3,
    threads: int | None = None,
    log: Log = stderr_log,
) -> WebcamResult:
    """Translate a live stream until quit, ``max_frames``, or the source ends.

    Capture, face detection and inference run in their own threads (see
    :mod:`translator.runtime.stages`); this thread encodes and displays.
    """
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
        session = options.open_model(model, log, threads or inference_threads(options.faces))
        log(f"Model: {session.info.describe()}; provider: {session.provider}")
        # Batches: several faces in a frame go through the model in one run.
        pipe = FramePipeline(session, None, options.side_by_side, options.batch_size)
        if options.faces:
            pipe.faces = _make_faces(options, detect_every)
    except BaseException:
        cap.release()
        raise
    # OpenCV's own thread pool would compete with onnxruntime's for the same cores; the
    # stages are the parallelism here. Restored on the way out (it is process-wide).
    opencv_threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    fps_in = cap.get(cv2.CAP_PROP_FPS)
    if live:
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the driver's own queue adds latency too
    capture = CaptureThread(cap, live=live).start()
    writer = None
    if record_path is not None:
        writer = VideoOutput(record_path, fps_in if 0 < fps_in < 1000 else 25.0, log=log)
    result = WebcamResult(provider=session.provider, record=record_path)
    controls = _Controls(faces=options.faces)
    # A file source is read ahead by the thread, so its timeout only guards a stuck decoder.
    timeout = frame_timeout if live else max(frame_timeout, 30.0)
    stream = _Stream(pipe, capture, live, controls, timeout).start()
    fps, last, began = 0.0, time.perf_counter(), time.perf_counter()
    failed = True
    try:
        while max_frames is None or result.frames < max_frames:
            frame = stream.next()
            if frame is None:
                stream.raise_error()
                if not live:
                    result.ended = "end of source"
                elif result.frames == 0:
                    raise GantoolError(f"{what} opened but delivered no frames")
                else:
                    result.ended = "camera stopped"
                    log(f"{what} stopped delivering frames; stopping.")
                break
            out = frame.output
            assert out is not None
            if writer is not None:
                writer.write(out)
            result.frames += 1
            now = time.perf_counter()
            fps = 1.0 / max(now - last, 1e-6) if fps == 0 else 0.9 * fps + 0.1 / max(now - last, 1e-6)
            last = now
            if window:
                label = f"{fps:4.1f} FPS  {1000 * (now - frame.captured):3.0f} ms  {pipe.model.provider_name}"
                label += "  faces" if controls.faces else ""
                label += "  original" if controls.original else ""
                cv2.imshow(WINDOW, draw_overlay(out, label)[..., ::-1])
                key = cv2.waitKey(1) & 0xFF
                if key in (ord("q"), 27):
                    result.ended = "quit"
                    break
                if key == ord("f"):
                    if pipe.faces is None:
                        pipe.faces = _make_faces(options, detect_every)
                    controls.faces = not controls.faces
                elif key == ord(" "):
                    controls.original = not controls.original
                elif key == ord("s"):
                    result.snapshots.append(_snapshot(out, Path(snapshot_dir)))
                    log(f"Saved {result.snapshots[-1]}")
            stream.stats.add(frame, time.perf_counter())
        else:
            result.ended = "max-frames"
        failed = False
    except KeyboardInterrupt:
        # Ctrl+C is how a headless session ends: what was recorded so far is kept.
        result.ended = "interrupted"
        failed = False
    finally:
        stream.stop()
        capture.stop()
        result.dropped = capture.dropped + stream.dropped
        if writer is not None:
            _finish_recording(writer, log, failed)
        if window:
            cv2.destroyAllWindows()
        cv2.setNumThreads(opencv_threads)
    result.fps = fps
    result.mean_fps = result.frames / max(time.perf_counter() - began, 1e-6)
    result.latency = stream.stats.median_latency
    result.stage_seconds = stream.stats.breakdown()
    return result


def _make_faces(options: RuntimeOptions, detect_every: int) -> FaceOptions:
    from .faces import BoxSmoother

    # Detection on a frame scaled to 320 px on its long side: faces in a webcam frame are
    # large, and the Haar cascade's time grows with the pixel count.
    return options.face_options(smooth=True, smoother=BoxSmoother(),
                                detect_every=max(1, detect_every), detect_side=320)


class _Stream:
    """capture -> (feeder thread) -> detection thread -> inference thread -> :meth:`next`."""

    def __init__(self, pipe: FramePipeline, capture: CaptureThread, live: bool,
                 controls: _Controls, timeout: float) -> None:
        self.pipe, self.capture, self.controls, self.timeout = pipe, capture, controls, timeout
        self.stop_event = threading.Event()
        self.boxes, self.outputs, self.results = Mailbox(live), Mailbox(live), Mailbox(live)
        self.stages = [
            Stage("detect", self._detect, self.boxes, self.outputs, self.stop_event),
            Stage("translate", self._translate, self.outputs, self.results, self.stop_event),
        ]
        self.feeder = threading.Thread(target=self._feed, daemon=True, name="gantool-feed")
        self.stats = LatencyStats()

    def start(self) -> _Stream:
        for stage in self.stages:
            stage.start()
        self.feeder.start()
        return self

    def _feed(self) -> None:
        index = 0
        while not self.stop_event.is_set():
            stamped = self.capture.read_stamped(self.timeout if index else max(self.timeout, 10.0))
            if stamped is None:
                break
            self.boxes.put(Frame(index, stamped[0], stamped[1]), self.stop_event)
            index += 1
        self.boxes.put(END, self.stop_event)

    def _detect(self, frame: Frame) -> Frame:
        if self.controls.faces and not self.controls.original and self.pipe.faces is not None:
            frame.boxes = self.pipe.face_boxes(frame.image)
        return frame

    def _translate(self, frame: Frame) -> Frame:
        pipe, image = self.pipe, frame.image
        if self.controls.original:
            out = image
        elif frame.boxes is not None:
            out = pipe.translate_faces([image], [frame.boxes])[0]
        else:
            out = pipe.translate([image])[0]
        frame.output = np.hstack([image, out]) if pipe.side_by_side else out
        return frame

    def next(self) -> Frame | None:
        """The next finished frame; None at the end of the stream. Waits as long as the
        stages work (a slow model is not a dead source: the feeder's timeout decides that)."""
        while True:
            item = self.results.get(0.1)
            if item is END:
                return None
            if item is not None:
                return item
            if not any(stage.thread.is_alive() for stage in self.stages):
                item = self.results.get(0)
                return None if item is None or item is END else item

    def raise_error(self) -> None:
        for stage in self.stages:
            if stage.error is not None:
                raise stage.error

    @property
    def dropped(self) -> int:
        return self.boxes.dropped + self.outputs.dropped + self.results.dropped

    def stop(self) -> None:
        self.stop_event.set()
        for stage in self.stages:
            stage.join(1.0)
        self.feeder.join(1.0)


def _finish_recording(writer: VideoOutput, log: Log, failed: bool) -> None:
    """Keep what was recorded when the loop ended normally or by Ctrl+C; after an error the
    unfinished file is thrown away, never left at the record path."""
    if failed or writer.frames == 0:
        writer.abort()
        why = "stopped by an error" if failed else "no frames"
        log(f"Nothing recorded to {writer.path} ({why})")
    else:
        writer.close()


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
