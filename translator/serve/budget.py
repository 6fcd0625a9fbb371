"""A budget of request-body bytes held in memory at once, shared by all uploads.

Each upload reserves the size it declares (``Content-Length``; the upload limit when it
streams without one) before its body is read, and gives it back when its answer is ready.
Counting bytes rather than requests is what keeps a few clients that declare a small body
and then send it a byte at a time from holding every turn: they reserve little, so other
uploads go ahead while the server's slow-body timeout (see :mod:`.server`) cuts them off.
Waiters are served first come, first served, so a large upload is not overtaken forever.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class ByteBudget:
    """At most ``total`` bytes reserved at once; :meth:`reserve` waits for its turn."""

    def __init__(self, total: int) -> None:
        self.total = max(1, total)
        self.free = self.total
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()

    @asynccontextmanager
    async def reserve(self, size: int) -> AsyncIterator[None]:
        # More than the whole budget could never be granted; it waits for all of it instead.
        size = min(max(0, size), self.total)
        await self._acquire(size)
        try:
            yield
        finally:
            self._release(size)

    async def _acquire(self, size: int) -> None:
        if not self._waiters and size <= self.free:
            self.free -= size
            return
        entry = (size, asyncio.get_running_loop().create_future())
        self._waiters.append(entry)
        try:
            await entry[1]
        except asyncio.CancelledError:  # the client went away while waiting
            if entry[1].done() and not entry[1].cancelled():
                self._release(size)  # granted just as it was cancelled
            elif entry in self._waiters:
                self._waiters.remove(entry)
                self._grant()  # it may have been first in line, holding back smaller ones
            raise

    def _release(self, size: int) -> None:
        self.free += size
        self._grant()

    def _grant(self) -> None:
        while self._waiters and self._waiters[0][0] <= self.free:
            size, future = self._waiters.popleft()
            if future.done():  # cancelled, its task not yet resumed to leave the line
                continue
            self.free -= size
            future.set_result(None)
