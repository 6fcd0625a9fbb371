"""A source read in its own thread, so a live stream never waits on the camera."""

from __future__ import annotations

import contextlib
import queue
import threading
import time

import numpy as np

from .sources import Source
from .stages import END, Mailbox


class CaptureThread:
    """Reads a :class:`~translator.runtime.sources.Source` in the background.

    A live source (a camera): the newest frame wins: when the consumer is slower than the
    camera, old frames are dropped, so latency never grows. Any other source (a file
    standing in for a camera): every frame is delivered in order, through a queue of
    ``maxsize``; the reader waits for the consumer instead of dropping. The hand-over is
    the stages' :class:`~translator.runtime.stages.Mailbox`. :meth:`stop` closes the source.
    """

    def __init__(self, source: Source, maxsize: int = 1) -> None:
        self.source = source
        self.live = source.props.live
        self.mailbox = Mailbox(self.live, maxsize)
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
        try:
            for frame in self.source:
                if self._stop.is_set():
                    break
                self.read_count += 1
                # Stamped at capture, so latency can be measured to display.
                self.mailbox.put((time.perf_counter(), frame.image), self._stop)
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

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=1.0)
        self.source.close()
