"""Running the app under uvicorn: in the foreground for ``gantool serve``, or in a background
thread for tests and ``benchmarks/serve_load.py``. Imports uvicorn (the serve extra):
``gantool serve`` imports this module where it checks that the extra is installed."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from translator.errors import GantoolError

from .slow_clients import Timeouts, slow_client_protocol


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


#: Connections served at once; more are answered 503 at once instead of queueing.
MAX_CONNECTIONS = 100


def _config(app: Any, access_log: bool, log_level: str, timeouts: Timeouts = Timeouts()) -> Any:
    config = uvicorn.Config(
        app,
        log_level=log_level,
        access_log=access_log,
        # The app has no startup or shutdown handlers: no lifespan task to cancel at Ctrl+C.
        lifespan="off",
        timeout_graceful_shutdown=3,
        server_header=False,
        # Slow or stuck clients must not hold connections open forever.
        timeout_keep_alive=5,
        http=slow_client_protocol(timeouts),
        limit_concurrency=MAX_CONNECTIONS,
    )
    if access_log:  # its level follows log_level (warning) unless raised: one line per request
        logging.getLogger("uvicorn.access").setLevel(logging.INFO)
    return config


def run_server(app: Any, sock: socket.socket, access_log: bool = False) -> None:
    """Serve ``app`` on ``sock`` until Ctrl+C."""
    try:
        uvicorn.Server(_config(app, access_log, "warning")).run(sockets=[sock])
    except asyncio.CancelledError:  # Ctrl+C landing in the loop's shutdown: "Interrupted."
        raise KeyboardInterrupt from None
    finally:
        sock.close()


@contextmanager
def serve_in_background(app: Any, host: str = "127.0.0.1", port: int = 0,
                        timeouts: Timeouts = Timeouts()) -> Iterator[str]:
    """Serve ``app`` from a thread while the block runs; yields the base URL
    (``http://127.0.0.1:PORT``). Port 0 picks a free port."""
    sock = bind(host, port)
    server = uvicorn.Server(_config(app, False, "error", timeouts))
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
