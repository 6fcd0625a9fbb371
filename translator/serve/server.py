"""Running the app under uvicorn: in the foreground for ``gantool serve``, or in a background
thread for tests and ``benchmarks/serve_load.py``."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from translator.errors import GantoolError


def bind(host: str, port: int) -> socket.socket:
    """A listening socket, or :class:`GantoolError` naming the address.

    We bind rather than letting uvicorn do it, because uvicorn logs and exits the process on
    a busy port; this way it is one clear error line like every other gantool error.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family)
    except OSError as exc:
        raise GantoolError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


#: Seconds a connection has to send a request's headers (its first, or the next one on a
#: kept-alive connection) before it is closed.
HEADER_TIMEOUT = 10.0
#: Connections served at once; more are answered 503 at once instead of queueing.
MAX_CONNECTIONS = 100


def _header_timeout_protocol(seconds: float) -> type:
    """uvicorn's h11 protocol, closing connections that do not finish a request's headers
    within ``seconds`` of connecting or of their previous response (uvicorn's keep-alive
    timeout stops at the first byte, so it misses one that trickles its headers)."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeaderTimeoutProtocol(H11Protocol):
        _header_timer: Any = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._await_headers()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._await_headers()

        def _await_headers(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
            self._header_timer = self.loop.call_later(seconds, self._headers_too_slow)

        def _headers_too_slow(self) -> None:
            # h11 leaves IDLE once a request's headers are complete.
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self.transport.close()

        def connection_lost(self, exc: Exception | None) -> None:
            self._header_timer.cancel()
            super().connection_lost(exc)

    return HeaderTimeoutProtocol


def _config(app: Any, access_log: bool, log_level: str, header_timeout: float = HEADER_TIMEOUT) -> Any:
    import uvicorn

    return uvicorn.Config(
        app,
        log_level=log_level,
        access_log=access_log,
        timeout_graceful_shutdown=3,
        server_header=False,
        # Slow or stuck clients must not hold connections open forever.
        timeout_keep_alive=5,
        http=_header_timeout_protocol(header_timeout),
        limit_concurrency=MAX_CONNECTIONS,
    )


def run_server(app: Any, sock: socket.socket, access_log: bool = False) -> None:
    """Serve ``app`` on ``sock`` until Ctrl+C."""
    import uvicorn

    try:
        uvicorn.Server(_config(app, access_log, "warning")).run(sockets=[sock])
    finally:
        sock.close()


@contextmanager
def serve_in_background(app: Any, host: str = "127.0.0.1", port: int = 0,
                        header_timeout: float = HEADER_TIMEOUT) -> Iterator[str]:
    """Serve ``app`` from a thread while the block runs; yields the base URL
    (``http://127.0.0.1:PORT``). Port 0 picks a free port."""
    import uvicorn

    sock = bind(host, port)
    server = uvicorn.Server(_config(app, False, "error", header_timeout))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RuntimeError("the background server did not start")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
