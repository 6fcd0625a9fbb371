"""``gantool serve`` against hostile web pages and clients: cross-origin POSTs, absurdly
nested JSON, connections that never finish their headers or trickle their bodies, images
over the pixel limit or too thin for a model."""

from __future__ import annotations

import http.client
import io
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
from runtime_helpers import (
    GANTOOL_META,
    fake_size_png,
    make_generator_model,
    make_invert_model,
    send_unless_closed,
)

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


def test_a_foreign_origin_among_several_is_refused(client):
    body = b'{"count": 1}'
    ours = ("Origin", "http://127.0.0.1:8666")
    for origins in ([("Origin", "https://evil.example"), ours], [ours, ("Origin", "https://evil.example")],
                    [ours, ("Origin", "null")]):
        r = client.post("/api/generate/gen", content=body, headers=origins)
        assert r.status_code == 403 and "another origin" in r.json()["error"], origins
    assert client.post("/api/generate/gen", content=body, headers=[ours, ours]).status_code == 200


def _png(height: int, width: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.zeros((height, width, 3), np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def test_uploads_are_held_to_gantool_max_pixels(models, monkeypatch):
    from starlette.testclient import TestClient

    from translator.data.images import DEFAULT_MAX_PIXELS
    from translator.serve import create_app

    def limited_client() -> TestClient:
        app = create_app(models[:1], options=RuntimeOptions(provider="cpu"), log=lambda _m: None)
        return TestClient(app, raise_server_exceptions=False)

    monkeypatch.delenv("GANTOOL_MAX_PIXELS", raising=False)
    assert limited_client().get("/api/models").json()["limits"]["max_pixels"] == DEFAULT_MAX_PIXELS
    monkeypatch.setenv("GANTOOL_MAX_PIXELS", "1000000")
    c = limited_client()
    assert c.get("/api/models").json()["limits"]["max_pixels"] == 1_000_000
    png = {"Content-Type": "image/png"}
    r = c.post("/api/translate/photo2negative", content=_png(2000, 2000), headers=png)
    assert r.status_code == 413 and "limit of 1,000,000 pixels" in r.json()["error"]
    r = c.post("/api/translate/photo2negative", content=_png(1000, 1001), headers=png)
    assert r.status_code == 413 and "GANTOOL_MAX_PIXELS" in r.json()["error"]
    assert c.post("/api/translate/photo2negative", content=_png(900, 1000)).status_code == 200


def test_a_bad_gantool_max_pixels_stops_serve_at_the_start(run_cli, models, monkeypatch):
    import translator.serve.server

    # Were the variable not read at the start, the server would run: end it at once then.
    monkeypatch.setattr(translator.serve.server, "run_server", lambda *args, **kwargs: None)
    monkeypatch.setenv("GANTOOL_MAX_PIXELS", "lots")
    r = run_cli("serve", "--model", models[0], "--provider", "cpu", "--port", "0")
    assert r.exit_code == 1 and "GANTOOL_MAX_PIXELS=lots" in r.output and "Traceback" not in r.output


def _padding_model(path):
    """A model that pads each side by 4 pixels, reflecting, as convolutional networks do:
    onnxruntime refuses inputs 4 pixels high or less."""
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, "H", "W"])
    y = helper.make_tensor_value_info("padded", TensorProto.FLOAT, ["N", 3, "H2", "W2"])
    pads = helper.make_tensor("pads", TensorProto.INT64, [8], [0, 0, 4, 4, 0, 0, 4, 4])
    node = helper.make_node("Pad", ["image", "pads"], ["padded"], mode="reflect")
    model = helper.make_model(helper.make_graph([node], "pad", [x], [y], initializer=[pads]),
                              opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 10
    helper.set_model_props(model, GANTOOL_META)
    onnx.save(model, str(path))
    return path


def test_an_image_too_thin_for_the_model_is_a_400(tmp_path):
    from starlette.testclient import TestClient

    from translator.serve import create_app

    app = create_app([_padding_model(tmp_path / "pad.onnx")], options=RuntimeOptions(provider="cpu"),
                     log=lambda _m: None)
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.post("/api/translate/pad", content=_png(1, 100_000), headers={"Content-Type": "image/png"})
        assert r.status_code == 400, r.text
        assert "cannot translate this 100000x1 image" in r.json()["error"]
        assert c.post("/api/translate/pad", content=_png(64, 64)).status_code == 200


def test_the_pixel_cap_of_serve_is_the_one_of_every_reader(models, tmp_path, monkeypatch):
    from translator.data.images import ImageReadError, read_image
    from translator.serve.service import Service

    monkeypatch.setenv("GANTOOL_MAX_PIXELS", "5000")
    with pytest.raises(ImageReadError, match="5,000"):
        read_image(fake_size_png(tmp_path / "big.png", 100, 100))
    assert Service(models[:1], RuntimeOptions(provider="cpu"), log=lambda _m: None).max_pixels == 5000


@contextmanager
def _strict_server(models, max_upload_bytes: int = 10 * 1024 * 1024, **timeouts: float) -> Iterator[int]:
    """The port of a server with short timeouts (``header``, ``body``, ``body_min_rate``)."""
    from translator.serve import create_app
    from translator.serve.server import Timeouts, serve_in_background

    app = create_app(models[:1], options=RuntimeOptions(provider="cpu"), max_upload_bytes=max_upload_bytes,
                     log=lambda _m: None)
    with serve_in_background(app, timeouts=Timeouts(**{"header": 0.5, **timeouts})) as url:
        yield int(url.rsplit(":", 1)[1])


@contextmanager
def _connection_to_strict_server(models) -> Iterator[socket.socket]:
    """A raw connection to a server with a 0.5 s header timeout."""
    with _strict_server(models) as port:
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


SLOW_UPLOAD = (b"POST /api/translate/photo2negative HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               b"Content-Type: image/png\r\nContent-Length: 100000\r\n\r\n")


class SlowBodies:
    """Connections that send an upload's headers, then its body a byte every ``every`` s
    (from a thread), as a client on a stalled link or an attacker holding turns would."""

    def __init__(self, port: int, count: int, every: float = 0.2, chunk: int = 1) -> None:
        self.socks = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(count)]
        self.closed_after: dict[int, float] = {}
        self._start = time.monotonic()
        self._stop = threading.Event()
        for s in self.socks:
            s.sendall(SLOW_UPLOAD)
        self._chunk = b"\0" * chunk
        self._thread = threading.Thread(target=self._trickle, args=(every,), daemon=True)
        self._thread.start()

    def _trickle(self, every: float) -> None:
        while not self._stop.wait(every) and len(self.closed_after) < len(self.socks):
            for n, s in enumerate(self.socks):
                if n not in self.closed_after and not send_unless_closed(s, self._chunk):
                    self.closed_after[n] = time.monotonic() - self._start

    def wait_closed(self, seconds: float) -> None:
        self._thread.join(seconds)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for s in self.socks:
            s.close()


def _normal_upload(port: int) -> tuple[int, float]:
    """(status, seconds) of a small upload on a fresh connection."""
    start = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        conn.request("POST", "/api/translate/photo2negative", body=_png(32, 48),
                     headers={"Content-Type": "image/png"})
        return conn.getresponse().status, time.monotonic() - start
    finally:
        conn.close()


def test_slow_bodies_are_closed_and_uploads_go_on(models):
    # The slow ones declare the whole upload budget (2 x workers x the limit), so the
    # normal upload has to wait until they are cut.
    with _strict_server(models, max_upload_bytes=100_000, body=0.5, body_min_rate=1000) as port:
        slow = SlowBodies(port, 4)
        try:
            status, seconds = _normal_upload(port)
            slow.wait_closed(10)
            assert status == 200 and seconds < 10
            assert len(slow.closed_after) == 4 and max(slow.closed_after.values()) < 5
        finally:
            slow.close()


def test_slow_bodies_that_declare_little_do_not_hold_up_uploads(models):
    # Body timeout of a minute: the normal upload must not wait for the slow ones' cut.
    with _strict_server(models, body=60) as port:
        slow = SlowBodies(port, 4)
        try:
            time.sleep(0.3)  # the slow ones are in, each with its body under way
            status, seconds = _normal_upload(port)
            assert status == 200 and seconds < 5
            assert not slow.closed_after  # not cut yet: it was not their cut that let it in
        finally:
            slow.close()


def test_an_upload_waiting_for_its_turn_is_not_cut_as_slow(models):
    """curl sends ``Expect: 100-continue`` and its body only once the server reads it: while
    other uploads hold the budget, that silence is the server's, not the client's."""
    with _strict_server(models, max_upload_bytes=100_000, body=0.3, body_min_rate=100) as port:
        # Fast enough never to be cut (500 B/s), slow enough to hold the budget throughout.
        holders = SlowBodies(port, 4, every=0.2, chunk=100)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                body = _png(32, 48)
                s.sendall(SLOW_UPLOAD.replace(b"100000", str(len(body)).encode())[:-2]
                          + b"Expect: 100-continue\r\n\r\n")
                time.sleep(1.5)  # five body windows
                holders.close()  # the budget frees, the app reads, and says continue
                assert s.recv(100).startswith(b"HTTP/1.1 100")
                s.sendall(body)
                assert s.recv(100).startswith(b"HTTP/1.1 200")
        finally:
            holders.close()
