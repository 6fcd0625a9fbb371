"""``gantool serve`` against hostile web pages and clients: cross-origin POSTs, absurdly
nested JSON, connections that never finish their headers."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from runtime_helpers import make_generator_model, make_invert_model

from translator.runtime.options import RuntimeOptions


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    return [make_invert_model(folder / "photo2negative.onnx"),
            make_generator_model(folder / "gen.onnx", latent_dim=8)]


@pytest.fixture(scope="module")
def client(models):
    from starlette.testclient import TestClient

    from translator.serve import create_app

    app = create_app(models, options=RuntimeOptions(provider="cpu"), log=lambda _m: None)
    with TestClient(app, base_url="http://127.0.0.1:8666", raise_server_exceptions=False) as c:
        yield c


def test_cross_origin_posts_are_refused(client):
    body = b'{"count": 1}'
    evil = client.post("/api/generate/gen", content=body,
                       headers={"Content-Type": "text/plain", "Origin": "https://evil.example"})
    assert evil.status_code == 403 and "origin" in evil.json()["error"].lower()
    null = client.post("/api/translate/photo2negative?sample=coffee", headers={"Origin": "null"})
    assert null.status_code == 403
    same = client.post("/api/generate/gen", content=body, headers={"Origin": "http://127.0.0.1:8666"})
    assert same.status_code == 200
    assert client.post("/api/generate/gen", content=body).status_code == 200  # curl: no Origin
    assert client.get("/api/models", headers={"Origin": "https://evil.example"}).status_code == 200


def test_deeply_nested_json_is_a_400(client):
    body = b"[" * 100_000 + b"]" * 100_000
    r = client.post("/api/generate/gen", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "JSON" in r.json()["error"]


@contextmanager
def _connection_to_strict_server(models) -> Iterator[socket.socket]:
    """A raw connection to a server with a 0.5 s header timeout."""
    from translator.serve import create_app
    from translator.serve.server import serve_in_background

    app = create_app(models[:1], options=RuntimeOptions(provider="cpu"), log=lambda _m: None)
    with serve_in_background(app, header_timeout=0.5) as url:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=4) as s:
            yield s


def test_connections_that_never_finish_their_headers_are_closed(models):
    with _connection_to_strict_server(models) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        start = time.monotonic()
        assert s.recv(100) == b""  # closed by the server, not by our timeout
        assert time.monotonic() - start < 3


def _read_response(s: socket.socket) -> bytes:
    """One whole response with a Content-Length body."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(ln.split(b":")[1]) for ln in head.split(b"\r\n")
                  if ln.lower().startswith(b"content-length:"))
    while len(body) < length:
        body += s.recv(65536)
    return head


def test_keep_alive_connections_that_trickle_a_later_request_are_closed(models):
    with _connection_to_strict_server(models) as s:
        s.sendall(b"GET /api/models HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert _read_response(s).startswith(b"HTTP/1.1 200")
        # Data arriving stops uvicorn's keep-alive timer; only the header timeout is left.
        s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        start = time.monotonic()
        assert s.recv(100) == b""  # closed by the server, not by our timeout
        assert time.monotonic() - start < 3
