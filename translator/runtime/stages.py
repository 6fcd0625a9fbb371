"""Stages of a live stream in their own threads, so capture, face detection, inference and
display/encoding overlap instead of queueing behind one another.

onnxruntime and OpenCV release the GIL while they work, so the threads really run at once.
Between two stages sits a :class:`Mailbox`: for a live source the newest frame wins (a
slow stage drops old frames, latency never grows); for a file every frame goes through in
order. Frames carry their capture time, so latency is measured from capture to display.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Put into a mailbox after the last frame; every stage passes it on and stops.
END: Any = object()


@dataclass
class Frame:
    """One frame on its way through the stages."""

    index: int
    #: ``time.perf_counter()`` when the frame was captured.
    captured: float
    image: np.ndarray
    boxes: list[tuple[int, int, int, int]] | None = None
    output: np.ndarray | None = None
    #: Seconds each stage spent on this frame, by stage name.
    seconds: dict[str, float] = field(default_factory=dict)


class Mailbox:
    """A hand-over between two threads: newest wins (``live``) or an ordered queue."""

    def __init__(self, live: bool, size: int = 2) -> None:
        self.live = live
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=1 if live else max(1, size))
        self.dropped = 0

    def put(self, item: Any, stop: threading.Event) -> None:
        """Hand ``item`` on; gives up only when ``stop`` is set. END never displaces a frame,
        so the last frames of a stream are shown."""
        newest_wins = self.live and item is not END
        while not stop.is_set():
            try:
                if newest_wins:
                    self.queue.put_nowait(item)
                else:
                    self.queue.put(item, timeout=0.05)
                return
            except queue.Full:
                if newest_wins:
                    try:
                        self.queue.get_nowait()
                        self.dropped += 1
                    except queue.Empty:
                        pass

    def get(self, timeout: float) -> Any:
        """The next item, or None when nothing came for ``timeout`` seconds."""
        try:
            return self.queue.get(timeout=timeout)
        except queue.Empty:
            return None


class Stage:
    """A thread that applies ``work`` to each frame from ``inbox`` and passes it on.

    An exception in ``work`` ends the stream (END goes downstream) and is kept in
    ``error`` for the consumer to raise.
    """

    def __init__(self, name: str, work: Callable[[Frame], Frame], inbox: Mailbox, outbox: Mailbox,
                 stop: threading.Event) -> None:
        self.name, self.work, self.inbox, self.outbox, self.stop = name, work, inbox, outbox, stop
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True, name=f"gantool-{name}")
        #: Set while the stage waits for a frame (it has none to work on).
        self.idle = threading.Event()
        #: ``gate(timeout)``: whether to take the next frame now, waiting up to ``timeout``
        #: seconds for it to say yes (None: always). A frame is taken only once it says yes,
        #: so what the stage takes is the newest of a live source at that moment.
        self.gate: Callable[[float], bool] | None = None

    def start(self) -> Stage:
        self.thread.start()
        return self

    def _run(self) -> None:
        while not self.stop.is_set():
            self.idle.set()
            if self.gate is not None and not self.gate(0.05):
                continue
            item = self.inbox.get(timeout=0.05)
            if item is None:
                continue
            self.idle.clear()
            if item is END:
                break
            began = time.perf_counter()
            try:
                item = self.work(item)
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer
                self.error = exc
                break
            item.seconds[self.name] = time.perf_counter() - began
            self.outbox.put(item, self.stop)
        self.outbox.put(END, self.stop)

    def join(self, timeout: float) -> None:
        self.thread.join(timeout)


@dataclass
class LatencyStats:
    """Capture-to-display latency and per-stage seconds over a run."""

    latencies: list[float] = field(default_factory=list)
    stage_seconds: dict[str, list[float]] = field(default_factory=dict)

    def add(self, frame: Frame, shown_at: float) -> None:
        self.latencies.append(shown_at - frame.captured)
        for name, sec in frame.seconds.items():
            self.stage_seconds.setdefault(name, []).append(sec)

    @property
    def median_latency(self) -> float:
        return float(np.median(self.latencies)) if self.latencies else 0.0

    def breakdown(self) -> dict[str, float]:
        """Median seconds per stage."""
        return {k: float(np.median(v)) for k, v in self.stage_seconds.items()}
