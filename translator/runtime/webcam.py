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
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import numpy as np

from translator.cpu import usable_cores
from translator.data.images import ImageReadError
from translator.errors import GantoolError

from .capture import CaptureThread
from .options import RuntimeOptions
from .pipeline import FaceOptions, FramePipeline
from .session import Log, stderr_log
from .sinks import ImageSink, Sink, VirtualCameraSink, check_pyvirtualcam
from .sources import FALLBACK_FPS, VIDEO, Source, SourceSpec, is_video_path, open_source
from .stages import END, Frame, LatencyStats, Mailbox, Stage
from .video import VideoSink

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


@dataclass(frozen=True)
class WebcamOptions:
    """What a live run does besides translating: what it records, when it stops, what it
    shows. How the camera is opened is the camera source's (``CameraOptions``)."""

    #: A video file the translated stream is also written to.
    record: str | os.PathLike | None = None
    max_frames: int | None = None
    #: Show the stream in a window (keys: q quit, f faces, space original, s snapshot).
    window: bool = True
    snapshot_dir: str | os.PathLike = "."
    #: With faces: run the detector on every n-th frame; the tracked boxes stand in between.
    detect_every: int = 3
    #: onnxruntime threads (None: :func:`inference_threads`).
    threads: int | None = None
    #: Also send the translated stream to a virtual camera (pyvirtualcam).
    virtual_camera: bool = False

    @property
    def record_path(self) -> Path | None:
        return Path(self.record) if self.record is not None else None


def open_stream_source(spec: SourceSpec) -> Source:
    """A camera (by index), or a file that stands in for one: a video (every frame, in
    order; any name OpenCV can read) or a still image."""
    if not isinstance(spec, int) and not Path(spec).is_file():
        raise GantoolError(f"source video not found: {Path(spec)}")
    try:
        return open_source(spec, fallback=VIDEO)
    except ImageReadError as exc:
        raise GantoolError(f"cannot read {spec}: {exc}") from None


def _without_window_if_headless(live: WebcamOptions, log: Log) -> WebcamOptions:
    """A virtual camera is its own output: on a machine without a display (a server feeding
    a video call) it needs no window, so asking for one is not an error there."""
    if not (live.window and live.virtual_camera) or has_display():
        return live
    log("No display (DISPLAY is not set): no window, frames go to the virtual camera only.")
    return replace(live, window=False)


def _check_arguments(live: WebcamOptions, source: Source | SourceSpec) -> None:
    if live.window and not has_display():
        raise GantoolError("no display to open a window on (DISPLAY is not set); use --no-window")
    if live.max_frames is not None and live.max_frames < 1:
        raise GantoolError("--max-frames must be at least 1")
    if live.virtual_camera:
        check_pyvirtualcam()
    record = live.record_path
    if record is None:
        return
    if not is_video_path(record):
        raise GantoolError(f"--record {record}: use a .mp4 or .avi file name")
    if isinstance(source, Source):
        source_path = source.path
    else:
        source_path = None if isinstance(source, int) else Path(source)
    if source_path is not None and record.resolve() == source_path.resolve():
        raise GantoolError("refusing to record over the source video")


def inference_threads(faces: bool, cores: int | None = None) -> int:
    """onnxruntime threads for a stream. With faces on 4 or more cores, one core is left
    to capture and detection so they run beside inference instead of waiting for it.
    Below 4 cores that would cost a third to half of the inference speed for a detector
    that runs on every 3rd frame only, so inference takes every core (its threads do not
    spin, so the detector still gets time when it needs it)."""
    cores = cores or usable_cores()
    return cores - 1 if faces and cores >= 4 else cores


def _stream_threads(options: RuntimeOptions, live: WebcamOptions) -> int:
    return live.threads or inference_threads(options.faces)


@dataclass
class _Controls:
    """What the window's keys switch; read by the stage threads."""

    faces: bool
    original: bool = False


def run_webcam(
    model: str | os.PathLike,
    source: Source | SourceSpec = 0,
    options: RuntimeOptions = RuntimeOptions(),
    live: WebcamOptions = WebcamOptions(),
    *,
    log: Log = stderr_log,
) -> WebcamResult:
    """Translate a live stream until quit, ``live.max_frames``, or the source ends.

    ``source`` is a camera index or a video file (opened here, after the arguments are
    checked), or a source already open (e.g. a camera with its own ``CameraOptions``); it
    is closed when the run ends. Capture, face detection and inference run in their own
    threads (see :mod:`translator.runtime.stages`); this thread encodes and displays.
    """
    opened = source if isinstance(source, Source) else None
    live = _without_window_if_headless(live, log)
    try:
        _check_arguments(live, source)
        # The source first: a missing camera or file is the one error the user sees.
        opened = source if isinstance(source, Source) else open_stream_source(source)
        pipe = _open_pipeline(model, options, live, log)
        record = live.record_path
        writer = None if record is None else VideoSink(
            record, opened.props.fps or FALLBACK_FPS, log=log)
        outputs: list[Sink] = [VirtualCameraSink.open_for(opened, log)] if live.virtual_camera else []
    except BaseException:
        if opened is not None:
            opened.close()
        raise
    return _LiveRun(pipe, opened, writer, options, live, log, outputs).run()


def _open_pipeline(model: str | os.PathLike, options: RuntimeOptions, live: WebcamOptions,
                   log: Log) -> FramePipeline:
    session = options.open_model(model, log, _stream_threads(options, live))
    log(f"Model: {session.info.describe()}; provider: {session.provider}")
    # Batches: several faces in a frame go through the model in one run.
    pipe = FramePipeline(session, None, options.side_by_side, options.batch_size)
    if options.faces:
        pipe.faces = _make_faces(options, live.detect_every)
    return pipe


class _LiveRun:
    """One run of the live loop: the stream in, the window and the recording out."""

    def __init__(self, pipe: FramePipeline, source: Source, writer: VideoSink | None,
                 options: RuntimeOptions, live: WebcamOptions, log: Log,
                 outputs: list[Sink]) -> None:
        self.pipe, self.source, self.writer = pipe, source, writer
        #: Live outputs besides the recording (a virtual camera): every frame, closed at the end.
        self.outputs = outputs
        self.options, self.live, self.log = options, live, log
        self.result = WebcamResult(provider=pipe.model.provider, record=live.record_path)
        self.controls = _Controls(faces=options.faces)
        self.fps, self.last = 0.0, time.perf_counter()

    def run(self) -> WebcamResult:
        import cv2

        # OpenCV's own thread pool would compete with onnxruntime's for the same cores; the
        # stages are the parallelism here. Restored on the way out (it is process-wide).
        opencv_threads = cv2.getNumThreads()
        cv2.setNumThreads(1)
        capture = CaptureThread(self.source).start()
        writer = self.writer
        spare_core = _stream_threads(self.options, self.live) < usable_cores()
        stream = _Stream(self.pipe, capture, self.controls, self.source.stall_timeout,
                         spare_core).start()
        began = time.perf_counter()
        failed = True
        try:
            self.result.ended = self._loop(stream, writer)
            failed = False
        except KeyboardInterrupt:
            # Ctrl+C is how a headless session ends: what was recorded so far is kept.
            self.result.ended = "interrupted"
            failed = False
        finally:
            stream.stop()
            capture.stop()
            self.result.dropped = capture.dropped + stream.dropped
            if writer is not None:
                _finish_recording(writer, self.log, failed)
            for output in self.outputs:
                output.close()
            if self.live.window:
                cv2.destroyAllWindows()
            cv2.setNumThreads(opencv_threads)
        return self._summed_up(stream, began)

    def _loop(self, stream: _Stream, writer: VideoSink | None) -> str:
        """Frames until the stream ends or the user stops it; why it ended."""
        max_frames = self.live.max_frames
        while max_frames is None or self.result.frames < max_frames:
            frame = stream.next()
            if frame is None:
                return self._ended(stream)
            out = frame.output
            assert out is not None
            if writer is not None:
                writer.write(out)
            for output in self.outputs:
                output.write(out)
            self.result.frames += 1
            now = self._tick()
            if self.live.window and self._show(out, 1000 * (now - frame.captured)):
                return "quit"
            stream.stats.add(frame, time.perf_counter())
        return "max-frames"

    def _ended(self, stream: _Stream) -> str:
        stream.raise_error()
        if not self.source.props.live:
            return "end of source"
        if self.result.frames == 0:
            raise GantoolError(f"{self.source.name} opened but delivered no frames")
        self.log(f"{self.source.name} stopped delivering frames; stopping.")
        return "camera stopped"

    def _tick(self) -> float:
        """Update the frame rate shown (a moving average); the time now."""
        now = time.perf_counter()
        rate = 1.0 / max(now - self.last, 1e-6)
        self.fps = rate if self.fps == 0 else 0.9 * self.fps + 0.1 * rate
        self.last = now
        return now

    def _show(self, out: np.ndarray, latency_ms: float) -> bool:
        """Show the frame and act on the key pressed; whether it was quit."""
        import cv2

        label = f"{self.fps:4.1f} FPS  {latency_ms:3.0f} ms  {self.pipe.model.provider_name}"
        label += "  faces" if self.controls.faces else ""
        label += "  original" if self.controls.original else ""
        cv2.imshow(WINDOW, draw_overlay(out, label)[..., ::-1])
        key = cv2.waitKey(1) & 0xFF
        if key in (ord("q"), 27):
            return True
        actions: dict[int, Callable[[], None]] = {
            ord("f"): self._toggle_faces, ord(" "): self._toggle_original,
            ord("s"): lambda: self._snapshot(out)}
        actions.get(key, lambda: None)()
        return False

    def _toggle_faces(self) -> None:
        if self.pipe.faces is None:
            self.pipe.faces = _make_faces(self.options, self.live.detect_every)
        self.controls.faces = not self.controls.faces

    def _toggle_original(self) -> None:
        self.controls.original = not self.controls.original

    def _snapshot(self, out: np.ndarray) -> None:
        self.result.snapshots.append(_snapshot(out, Path(self.live.snapshot_dir)))
        self.log(f"Saved {self.result.snapshots[-1]}")

    def _summed_up(self, stream: _Stream, began: float) -> WebcamResult:
        self.result.fps = self.fps
        self.result.mean_fps = self.result.frames / max(time.perf_counter() - began, 1e-6)
        self.result.latency = stream.stats.median_latency
        self.result.stage_seconds = stream.stats.breakdown()
        return self.result


def _make_faces(options: RuntimeOptions, detect_every: int) -> FaceOptions:
    from .faces import BoxSmoother

    # Detection on a frame scaled to 320 px on its long side: faces in a webcam frame are
    # large, and the Haar cascade's time grows with the pixel count.
    return options.face_options(smooth=True, smoother=BoxSmoother(),
                                detect_every=max(1, detect_every), detect_side=320)


class _Stream:
    """capture -> (feeder thread) -> detection thread -> inference thread -> :meth:`next`."""

    def __init__(self, pipe: FramePipeline, capture: CaptureThread, controls: _Controls,
                 timeout: float, spare_core: bool) -> None:
        self.pipe, self.capture, self.controls, self.timeout = pipe, capture, controls, timeout
        self.stop_event = threading.Event()
        live = capture.live
        self.boxes, self.outputs, self.results = Mailbox(live), Mailbox(live), Mailbox(live)
        detect = Stage("detect", self._detect, self.boxes, self.outputs, self.stop_event)
        translate = Stage("translate", self._translate, self.outputs, self.results, self.stop_event)
        if live and not spare_core:
            # Newest wins between detection and translation, so a detector that ran ahead of
            # the model would detect faces in frames that are then dropped, on the cores the
            # model needs: with no core to spare, faces are detected only in a frame the
            # model is free to take next.
            detect.gate = partial(self._detector_may_start, translate)
        self.stages = [detect, translate]
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

    @property
    def _detecting(self) -> bool:
        return self.controls.faces and not self.controls.original and self.pipe.faces is not None

    def _detector_may_start(self, translate: Stage, timeout: float) -> bool:
        return not self._detecting or translate.idle.wait(timeout)

    def _detect(self, frame: Frame) -> Frame:
        if self._detecting:
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


def _finish_recording(writer: VideoSink, log: Log, failed: bool) -> None:
    """Keep what was recorded when the loop ended normally or by Ctrl+C; after an error the
    unfinished file is thrown away, never left at the record path."""
    if failed or writer.frames == 0:
        writer.abort()
        why = "stopped by an error" if failed else "no frames"
        log(f"Nothing recorded to {writer.path} ({why})")
    else:
        writer.close()


def _snapshot(image: np.ndarray, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = folder / f"gantool-snapshot-{stamp}.png"
    n = 1
    while path.exists():
        path = folder / f"gantool-snapshot-{stamp}-{n}.png"
        n += 1
    ImageSink(path).write(image)
    return path
