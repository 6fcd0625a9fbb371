"""``gantool serve`` against hostile web pages and clients: cross-origin POSTs, absurdly
nested JSON, connections that never finish their headers."""

from __future__ import annotations

import socket
import time

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


def test_connections_that_never_finish_their_headers_are_closed(models):
    from translator.serve import create_app
    from translator.serve.server import serve_in_background

    app = create_app(models[:1], options=RuntimeOptions(provider="cpu"), log=lambda _m: None)
    with serve_in_background(app, header_timeout=0.5) as url:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            start = time.monotonic()
            assert s.recv(100) == b""  # closed by the server, not by our timeout
            assert time.monotonic() - start < 4
