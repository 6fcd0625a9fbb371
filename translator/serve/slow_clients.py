"""Closing connections whose clients are too slow: uvicorn's h11 protocol with a header
timer and a body-rate check (uvicorn has neither). Imports uvicorn and h11, the serve
extra, like :mod:`.server` that uses it."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import h11
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.h11_impl import H11Protocol

#: Seconds a connection has to send a request's headers (its first, or the next one on a
#: kept-alive connection) before it is closed.
HEADER_TIMEOUT = 10.0
#: A request body must bring at least :data:`BODY_MIN_RATE` bytes a second, counted over
#: each :data:`BODY_TIMEOUT` seconds of it, or the connection is closed: so one that sends
#: nothing for that long is closed too. 1 kB/s is far below any real link; a client that
#: trickles a byte every few seconds would otherwise hold its connection for hours.
BODY_TIMEOUT = 10.0
BODY_MIN_RATE = 1024.0


@dataclass(frozen=True)
class Timeouts:
    """How long clients may take to send a request: see :data:`HEADER_TIMEOUT`,
    :data:`BODY_TIMEOUT` and :data:`BODY_MIN_RATE` (tests use short ones)."""

    header: float = HEADER_TIMEOUT
    body: float = BODY_TIMEOUT
    body_min_rate: float = BODY_MIN_RATE

    @property
    def body_min_bytes(self) -> int:
        """Bytes each body window must bring (at least one: a silent window always fails)."""
        return max(1, int(self.body_min_rate * self.body))


class ResumeAwareFlow(FlowControl):
    """Flow control that remembers when reading last resumed: while the app does not
    read a body (it waits for its turn), uvicorn stops reading the socket, and that
    time must not count against the client."""

    resumed_at = 0.0

    def resume_reading(self) -> None:
        if self.read_paused:
            self.resumed_at = time.monotonic()
        super().resume_reading()


class SlowClientProtocol(H11Protocol):
    """uvicorn's h11 protocol, closing connections that do not finish a request's headers
    within ``timeouts.header`` of connecting or of their previous response (uvicorn's
    keep-alive timeout stops at the first byte, so it misses one that trickles its headers),
    and those whose body comes slower than ``timeouts.body_min_rate`` (uvicorn has no body
    timeout at all)."""

    timeouts: Timeouts = Timeouts()
    _header_timer: Any = None
    _body_timer: Any = None
    _received = 0
    _received_at_check = 0
    _flow: ResumeAwareFlow

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self.flow = self._flow = ResumeAwareFlow(transport)
        self._await_headers()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._await_headers()

    def _await_headers(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
        self._header_timer = self.loop.call_later(self.timeouts.header, self._headers_too_slow)

    def _headers_too_slow(self) -> None:
        # h11 leaves IDLE once a request's headers are complete.
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        self._received += len(data)
        super().data_received(data)

    def handle_events(self) -> None:
        super().handle_events()
        # SEND_BODY: the headers are in and the body is on its way.
        if self.conn.their_state is h11.SEND_BODY and self._body_timer is None:
            self._watch_body()

    def _watch_body(self) -> None:
        self._received_at_check = self._received
        self._body_timer = self.loop.call_later(self.timeouts.body, self._check_body)

    def _check_body(self) -> None:
        self._body_timer = None
        if self.conn.their_state is not h11.SEND_BODY or self.transport.is_closing():
            return
        if self._too_slow():
            self.transport.close()
            return
        self._watch_body()

    def _too_slow(self) -> bool:
        return not self._waiting_on_us() and (
            self._received - self._received_at_check < self.timeouts.body_min_bytes)

    def _waiting_on_us(self) -> bool:
        """Whether the body is late because of us: reading is paused, or was lately,
        or the client asked ``Expect: 100-continue`` and the app has not read yet (curl
        does so for large uploads), while the upload waits for its turn."""
        flow = self._flow
        return (flow.read_paused or time.monotonic() - flow.resumed_at < self.timeouts.body
                or self.conn.they_are_waiting_for_100_continue)

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self._header_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        super().connection_lost(exc)


def slow_client_protocol(timeouts: Timeouts) -> type[SlowClientProtocol]:
    """The protocol class for uvicorn's ``http`` setting, with these timeouts."""
    return type("SlowClientProtocol", (SlowClientProtocol,), {"timeouts": timeouts})
