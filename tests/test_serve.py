"""``gantool serve``: the app through Starlette's test client, a real uvicorn server for
malformed HTTP, and the CLI. Models are the tiny ONNX files of ``runtime_helpers``: the
translation one inverts colours exactly, so results can be checked pixel by pixel."""

from __future__ import annotations

import http.client
import io
import json
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from translator.runtime.options import RuntimeOptions

pytest.importorskip("starlette", reason="the serve extra (starlette) is not installed")
pytest.importorskip("uvicorn", reason="the serve extra (uvicorn) is not installed")
pytest.importorskip("httpx", reason="starlette's test client needs httpx")

from runtime_helpers import GANTOOL_META, astronaut, make_generator_model, make_invert_model  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")

LATENT = 8
SMALL_UPLOAD = 64 * 1024
SMALL_PIXELS = 600 * 600


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("serve-models")
    make_invert_model(d / "photo2negative.onnx")
    back = dict(GANTOOL_META)
    back.update({"gantool.direction": "b2a", "gantool.domain_from": "negative", "gantool.domain_to": "photo"})
    make_invert_model(d / "negative2photo.onnx", metadata=back)
    # DCGAN-style [N, latent, 1, 1] input: the server must reshape the noise for it.
    make_generator_model(d / "dcgan.onnx", latent_dim=LATENT, size=8, dcgan_input=True)
    return d


@pytest.fixture(scope="module")
def app(model_dir):
    from translator.serve import create_app

    paths = [model_dir / "photo2negative.onnx", model_dir / "negative2photo.onnx", model_dir / "dcgan.onnx"]
    return create_app(paths, options=RuntimeOptions(provider="cpu"), max_upload_bytes=SMALL_UPLOAD,
                      max_pixels=SMALL_PIXELS, log=lambda m: None)


@pytest.fixture(scope="module")
def client(app):
    from starlette.testclient import TestClient

    # Server errors come back as 500 responses, as a browser would see them.
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def png_bytes(image: np.ndarray, fmt: str = "PNG", **kwargs) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def decode(data: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def gradient(height: int, width: int) -> np.ndarray:
    """Smooth content: resizing to the model's 64 px and back barely changes it, so the
    inverted result can be compared with ``255 - input`` closely."""
    yy, xx = np.mgrid[0:height, 0:width]
    return np.stack(
        [xx * 255 // max(1, width - 1), yy * 255 // max(1, height - 1), np.full_like(xx, 60)], axis=-1
    ).astype(np.uint8)


def data_url_image(url: str) -> np.ndarray:
    import base64

    assert url.startswith("data:image/png;base64,")
    return decode(base64.b64decode(url.split(",", 1)[1]))


# -- listing -------------------------------------------------------------------------------


def test_models_listing_pairs_the_two_directions_of_a_run(client):
    r = client.get("/api/models")
    assert r.status_code == 200
    entries = r.json()["entries"]
    kinds = [e["kind"] for e in entries]
    assert kinds == ["translation", "generation"]
    pair = entries[0]
    assert [d["id"] for d in pair["directions"]] == ["photo2negative", "negative2photo"]
    assert pair["directions"][0]["label"] == "photo → negative"
    assert all(d["provider"] == "cpu" for d in pair["directions"])
    gen = entries[1]["model"]
    assert gen["id"] == "dcgan" and gen["latent_dim"] == LATENT
    # Ids are names we assigned, never file paths.
    assert "/" not in json.dumps([d["id"] for d in pair["directions"]] + [gen["id"]])
    assert r.json()["samples"] == ["astronaut", "coffee", "chelsea"]


def test_unrelated_translation_models_are_listed_separately(model_dir, tmp_path):
    from translator.serve.service import Service, model_ids

    other = dict(GANTOOL_META)
    other.update({"gantool.domain_from": "day", "gantool.domain_to": "night"})
    make_invert_model(tmp_path / "day2night.onnx", metadata=other)
    # Same stem twice: ids must still be unique.
    paths = [
        model_dir / "photo2negative.onnx",
        tmp_path / "day2night.onnx",
        model_dir / "photo2negative.onnx",
    ]
    svc = Service(paths, options=RuntimeOptions(provider="cpu"), log=lambda m: None)
    entries = svc.describe()["entries"]
    assert [len(e["directions"]) for e in entries] == [1, 1, 1]
    assert model_ids(paths) == ["photo2negative", "day2night", "photo2negative-2"]


def test_page_is_served_with_a_restrictive_policy(client):
    r = client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert 'id="sliders"' in r.text and 'id="file"' in r.text
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]


# -- translation ---------------------------------------------------------------------------


def test_upload_is_translated_at_its_own_size_with_provider_and_timing(client):
    image = gradient(120, 200)
    r = client.post(
        "/api/translate/photo2negative", content=png_bytes(image), headers={"Content-Type": "image/png"}
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    out = decode(r.content)
    assert out.shape == image.shape
    # The model inverts colours: every pixel is close to 255 - input.
    err = np.abs(out.astype(int) - (255 - image.astype(int)))
    assert err.mean() < 3 and np.percentile(err, 99) < 12
    assert r.headers["x-gantool-provider"] == "cpu"
    assert float(r.headers["x-gantool-elapsed-ms"]) >= float(r.headers["x-gantool-model-ms"]) > 0
    assert "model;dur=" in r.headers["server-timing"]
    assert r.headers["x-gantool-size"] == "200x120"


def test_jpeg_upload_and_other_direction(client):
    image = gradient(96, 64)
    r = client.post(
        "/api/translate/negative2photo",
        content=png_bytes(image, "JPEG", quality=95),
        headers={"Content-Type": "application/octet-stream"},
    )
    assert r.status_code == 200, r.text
    out = decode(r.content)
    assert out.shape == image.shape
    assert np.abs(out.astype(int) - (255 - image.astype(int))).mean() < 5


def test_bundled_sample_is_translated(client):
    r = client.post("/api/translate/photo2negative?sample=astronaut")
    assert r.status_code == 200, r.text
    assert decode(r.content).shape == (512, 512, 3)
    assert 'filename="negative.png"' in r.headers["content-disposition"]
    s = client.get("/api/samples/astronaut.png")
    assert s.status_code == 200 and s.headers["content-type"] == "image/png"
    np.testing.assert_array_equal(decode(s.content), astronaut())


def test_face_mode_changes_only_the_face(client):
    r = client.post("/api/translate/photo2negative?sample=astronaut&faces=1")
    assert r.status_code == 200, r.text
    assert int(r.headers["x-gantool-faces"]) >= 1
    out, src = decode(r.content).astype(int), astronaut().astype(int)
    assert out.shape == src.shape
    # The astronaut's face is around (x 160-260, y 60-170); the bottom-right corner is far away.
    assert np.abs(out[80:150, 180:240] - src[80:150, 180:240]).mean() > 60
    np.testing.assert_array_equal(out[400:, 400:], src[400:, 400:])


def test_concurrent_requests_give_the_same_results_as_one_at_a_time(app):
    from concurrent.futures import ThreadPoolExecutor

    svc = app.state.service
    jobs = [("astronaut", True), ("coffee", False), ("astronaut", False), ("chelsea", True)] * 3

    def run(job):
        return decode(svc.translate("photo2negative", sample=job[0], faces=job[1])[0])

    alone = {job: run(job) for job in set(jobs)}
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(run, jobs))
    for job, result in zip(jobs, results, strict=True):
        np.testing.assert_array_equal(result, alone[job])
    # Face pipelines are borrowed inside the service's slots, so there are never more of them.
    assert svc.models["photo2negative"]._face_pool.qsize() <= 2


def test_exif_rotation_is_applied(client):
    from PIL import Image

    img = Image.fromarray(gradient(40, 100))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif.tobytes())
    r = client.post(
        "/api/translate/photo2negative", content=buf.getvalue(), headers={"Content-Type": "image/jpeg"}
    )
    assert r.status_code == 200, r.text
    assert decode(r.content).shape == (100, 40, 3)


# -- generation ----------------------------------------------------------------------------


def test_new_samples_are_seeded_and_latents_render_back(client):
    r = client.post("/api/generate/dcgan", json={"count": 5, "seed": 7})
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["images"]) == 5 and body["seed"] == 7 and body["provider"] == "cpu"
    assert np.array(body["latents"]).shape == (5, LATENT)
    assert body["size"] == [8, 8]
    again = client.post("/api/generate/dcgan", json={"count": 5, "seed": 7}).json()
    assert again["latents"] == body["latents"]

    # The returned vectors render the same images (what the page's sliders start from).
    rendered = client.post("/api/generate/dcgan", json={"latents": body["latents"][:2]}).json()
    for a, b in zip(rendered["images"], body["images"][:2], strict=True):
        assert np.abs(data_url_image(a).astype(int) - data_url_image(b).astype(int)).max() <= 1

    # Moving one slider changes the image.
    moved = [list(body["latents"][0])]
    moved[0][3] += 2.5
    changed = client.post("/api/generate/dcgan", json={"latents": moved}).json()["images"][0]
    assert (
        np.abs(data_url_image(changed).astype(int) - data_url_image(body["images"][0]).astype(int)).max() > 10
    )


def test_unseeded_samples_differ(client):
    a = client.post("/api/generate/dcgan", json={"count": 2}).json()
    b = client.post("/api/generate/dcgan", json={"count": 2}).json()
    assert a["latents"] != b["latents"]


def test_interpolation_runs_from_a_to_b(client):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(LATENT).tolist(), rng.standard_normal(LATENT).tolist()
    ends = client.post("/api/generate/dcgan", json={"latents": [a, b]}).json()["images"]
    r = client.post("/api/generate/dcgan", json={"interpolate": {"a": a, "b": b, "steps": 6}})
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["images"]) == 6
    assert np.allclose(body["latents"][0], a, atol=1e-4) and np.allclose(body["latents"][-1], b, atol=1e-4)
    assert (
        np.abs(data_url_image(body["images"][0]).astype(int) - data_url_image(ends[0]).astype(int)).max() <= 1
    )
    assert (
        np.abs(data_url_image(body["images"][-1]).astype(int) - data_url_image(ends[1]).astype(int)).max()
        <= 1
    )
    # Spherical paths keep the norm up in the middle; straight ones dip through the origin side.
    linear = client.post(
        "/api/generate/dcgan", json={"interpolate": {"a": a, "b": b, "steps": 3, "mode": "linear"}}
    ).json()["latents"][1]
    slerp = client.post("/api/generate/dcgan", json={"interpolate": {"a": a, "b": b, "steps": 3}}).json()[
        "latents"
    ][1]
    assert np.linalg.norm(slerp) > np.linalg.norm(linear)


def test_interpolate_handles_parallel_and_zero_vectors():
    from translator.serve.latents import interpolate

    a = np.ones(4, np.float32)
    out = interpolate(a, 2 * a, 3)
    np.testing.assert_allclose(out[1], 1.5 * a, rtol=1e-6)
    out = interpolate(np.zeros(4, np.float32), a, 5)
    assert np.all(np.isfinite(out)) and np.allclose(out[-1], a)


def test_requested_latents_reads_each_kind_of_request_without_a_model():
    from translator.serve.errors import ServeError
    from translator.serve.latents import requested_latents

    noise, seed = requested_latents({"count": 3, "seed": 7}, 4)
    assert noise.shape == (3, 4) and seed == 7
    np.testing.assert_array_equal(requested_latents({"count": 3, "seed": 7}, 4)[0], noise)
    given, seed = requested_latents({"latents": [[0, 1, 2, 3]]}, 4)
    assert seed is None and given.tolist() == [[0, 1, 2, 3]]
    steps, seed = requested_latents({"interpolate": {"a": [1, 0], "b": [0, 1], "steps": 4}}, 2)
    assert seed is None and steps.shape == (4, 2)
    for bad, status in (([1], 400), ({"count": 0}, 422), ({"latents": [[1, 2]]}, 422)):
        with pytest.raises(ServeError) as caught:
            requested_latents(bad, 4)
        assert caught.value.status == status


def test_slow_client_protocol_carries_its_own_timeouts():
    from translator.serve.slow_clients import SlowClientProtocol, Timeouts, slow_client_protocol

    short, default = slow_client_protocol(Timeouts(header=0.5)), slow_client_protocol(Timeouts())
    assert issubclass(short, SlowClientProtocol) and short.timeouts.header == 0.5
    assert default.timeouts.header == 10.0 and SlowClientProtocol.timeouts == Timeouts()


# -- bad requests: each gets a clear status, and the server keeps serving ------------------


def _truncated_png() -> bytes:
    data = png_bytes(gradient(200, 200))
    return data[: len(data) // 2]


def _truncated_jpeg() -> bytes:
    data = png_bytes((np.random.default_rng(0).random((200, 200, 3)) * 255).astype(np.uint8), "JPEG")
    return data[: len(data) // 2]


def _chunks(total: int):
    # No Content-Length: the limit must also hold while the body streams in.
    for _ in range(total // 8192):
        yield b"\x89PNG" + b"\0" * 8188


#: case: (method, url, request arguments, status, words the error must contain)
BAD_REQUESTS: dict[str, tuple[str, str, dict[str, Any], int, str]] = {
    "oversized": (
        "post",
        "/api/translate/photo2negative",
        {"content": b"\0" * (SMALL_UPLOAD + 1)},
        413,
        "too large",
    ),
    "oversized-streamed": ("post", "/api/translate/photo2negative", {"content": "STREAM"}, 413, "too large"),
    "too-many-pixels": (
        "post",
        "/api/translate/photo2negative",
        {"content": png_bytes(np.zeros((700, 700, 3), np.uint8))},
        413,
        "pixels",
    ),
    "not-an-image": (
        "post",
        "/api/translate/photo2negative",
        {"content": b"hello, world" * 50},
        415,
        "not an image",
    ),
    "text-content-type": (
        "post",
        "/api/translate/photo2negative",
        {"content": b"x", "headers": {"Content-Type": "text/plain"}},
        415,
        "expected an image",
    ),
    "multipart-form": (
        "post",
        "/api/translate/photo2negative",
        {"files": {"image": ("a.png", b"123", "image/png")}},
        415,
        "multipart",
    ),
    "svg": (
        "post",
        "/api/translate/photo2negative",
        {
            "content": b"<svg xmlns='http://www.w3.org/2000/svg'/>",
            "headers": {"Content-Type": "image/svg+xml"},
        },
        415,
        "not an image",
    ),
    "truncated-png": (
        "post",
        "/api/translate/photo2negative",
        {"content": _truncated_png()},
        400,
        "truncated",
    ),
    "truncated-jpeg": (
        "post",
        "/api/translate/photo2negative",
        {"content": _truncated_jpeg()},
        400,
        "truncated",
    ),
    "empty-body": ("post", "/api/translate/photo2negative", {"content": b""}, 400, "no image"),
    "unknown-model": ("post", "/api/translate/nope", {"content": b"x"}, 404, "unknown model 'nope'"),
    "path-as-model": (
        "post",
        "/api/translate/..%2F..%2Fetc%2Fpasswd",
        {"content": b"x"},
        404,
        "passwd",
    ),
    "unknown-model-generate": ("post", "/api/generate/nope", {"json": {}}, 404, "unknown model"),
    "wrong-kind-translate": ("post", "/api/translate/dcgan?sample=astronaut", {}, 400, "generation model"),
    "wrong-kind-generate": ("post", "/api/generate/photo2negative", {"json": {}}, 400, "translation model"),
    "unknown-sample": ("post", "/api/translate/photo2negative?sample=../../x", {}, 404, "unknown sample"),
    "unknown-sample-image": ("get", "/api/samples/passwd.png", {}, 404, "unknown sample"),
    "bad-flag": ("post", "/api/translate/photo2negative?sample=astronaut&faces=maybe", {}, 400, "0 or 1"),
    "bad-json": ("post", "/api/generate/dcgan", {"content": b"{not json"}, 400, "not valid JSON"),
    "json-not-object": ("post", "/api/generate/dcgan", {"json": [1, 2]}, 400, "JSON object"),
    "latent-wrong-length": (
        "post",
        "/api/generate/dcgan",
        {"json": {"latents": [[0.0] * 3]}},
        422,
        "8 numbers",
    ),
    "latent-nan": (
        "post",
        "/api/generate/dcgan",
        {"content": b'{"latents": [[NaN,0,0,0,0,0,0,0]]}'},
        422,
        "finite",
    ),
    "latent-strings": (
        "post",
        "/api/generate/dcgan",
        {"json": {"latents": [["a"] * 8]}},
        422,
        "only numbers",
    ),
    "too-many-samples": ("post", "/api/generate/dcgan", {"json": {"count": 10_000}}, 422, "between 1 and 64"),
    "bad-seed": ("post", "/api/generate/dcgan", {"json": {"seed": "x"}}, 422, "whole number"),
    "bad-steps": (
        "post",
        "/api/generate/dcgan",
        {"json": {"interpolate": {"a": [0] * 8, "b": [1] * 8, "steps": 1000}}},
        422,
        "steps",
    ),
    "huge-json": (
        "post",
        "/api/generate/dcgan",
        {"content": b"[" + b"0," * 600_000 + b"0]"},
        413,
        "too large",
    ),
    "unknown-page": ("get", "/etc/passwd", {}, 404, "no such page"),
    "wrong-method": ("get", "/api/translate/photo2negative", {}, 405, "method"),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_request_gets_a_clear_status(client, case):
    method, url, kwargs, status, words = BAD_REQUESTS[case]
    kwargs = dict(kwargs)
    if kwargs.get("content") == "STREAM":
        kwargs["content"] = _chunks(SMALL_UPLOAD * 2)
    if method == "post" and "content" in kwargs and "headers" not in kwargs:
        kwargs["headers"] = {"Content-Type": "image/png" if "translate" in url else "application/json"}
    r = getattr(client, method)(url, **kwargs)
    assert r.status_code == status, r.text
    body = r.json()
    assert body["status"] == status
    assert words.lower() in body["error"].lower()
    # ...and the server keeps serving.
    assert client.get("/api/models").status_code == 200


def test_server_still_translates_after_bad_requests(client):
    for kwargs in (
        {"content": b"junk"},
        {"content": _truncated_png()},
        {"content": b"\0" * (SMALL_UPLOAD + 10)},
    ):
        assert client.post(
            "/api/translate/photo2negative", headers={"Content-Type": "image/png"}, **kwargs
        ).is_error
    ok = client.post("/api/translate/photo2negative", content=png_bytes(gradient(32, 48)))
    assert ok.status_code == 200 and decode(ok.content).shape == (32, 48, 3)


def test_a_crash_in_a_handler_is_a_500_not_a_dead_server(client, app, monkeypatch):
    svc = app.state.service

    def broken(*args, **kwargs):
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(svc, "generate", broken)
    r = client.post("/api/generate/dcgan", json={})
    assert r.status_code == 500 and "simulated bug" in r.json()["error"]
    monkeypatch.undo()
    assert client.post("/api/generate/dcgan", json={"count": 1}).status_code == 200


def test_missing_scikit_image_falls_back_to_a_generated_sample(monkeypatch):
    import sys

    from translator.serve.service import load_sample

    monkeypatch.setitem(sys.modules, "skimage", None)  # makes "from skimage import data" fail
    image = load_sample("coffee")
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3 and image.std() > 10


# -- a real server: malformed HTTP and foreign Host headers --------------------------------


def _raw(port: int, payload: bytes, read: bool = True) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        try:
            s.sendall(payload)
            if not read:
                return b""
            s.shutdown(socket.SHUT_WR)
        except OSError:
            # The server may answer and close before the whole request is sent (a huge
            # header): what it answered is still there to read.
            pass
        chunks = []
        while True:
            try:
                data = s.recv(65536)
            except OSError:  # timeout, reset, or already shut down
                break
            if not data:
                break
            chunks.append(data)
        return b"".join(chunks)


def test_real_server_survives_malformed_http_and_checks_the_host(model_dir):
    from translator.serve import create_app
    from translator.serve.app import loopback_hosts
    from translator.serve.server import serve_in_background

    app = create_app([model_dir / "photo2negative.onnx"], options=RuntimeOptions(provider="cpu"),
                     max_upload_bytes=SMALL_UPLOAD, allowed_hosts=loopback_hosts("127.0.0.1"),
                     log=lambda m: None)
    with serve_in_background(app) as url:
        port = int(url.rsplit(":", 1)[1])
        assert _raw(port, b"GARBAGE\r\n\r\n").startswith(b"HTTP/1.1 400")
        assert _raw(port, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\0" * 64)[:12] in (
            b"",
            b"HTTP/1.1 400",
        )
        assert _raw(port, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n")[
            :12
        ] in (b"", b"HTTP/1.1 400", b"HTTP/1.1 431")
        # Promises 50 kB, sends 10 bytes and hangs up: the upload is cut short mid-body.
        _raw(
            port,
            b"POST /api/translate/photo2negative HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: image/png\r\nContent-Length: 50000\r\n\r\n\x89PNG\r\n\x1a\n\0\0",
            read=False,
        )
        # A page on another site reaching us through DNS rebinding carries its own host name.
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/api/models", headers={"Host": "evil.example"})
        assert conn.getresponse().status == 400
        conn.close()
        time.sleep(0.1)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request(
            "POST",
            "/api/translate/photo2negative",
            body=png_bytes(gradient(20, 30)),
            headers={"Content-Type": "image/png"},
        )
        resp = conn.getresponse()
        assert resp.status == 200 and decode(resp.read()).shape == (20, 30, 3)
        conn.request("GET", "/api/models", headers={"Host": f"localhost:{port}"})
        assert conn.getresponse().status == 200
        conn.close()


# -- CLI -----------------------------------------------------------------------------------


def test_cli_help_and_errors(run_cli, model_dir, tmp_path):
    r = run_cli("serve", "--help")
    assert r.exit_code == 0 and "--max-upload-mb" in r.output and "127.0.0.1" in r.output
    r = run_cli("serve", "--model", tmp_path / "missing.onnx")
    assert r.exit_code == 1 and "model file not found" in r.output
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = run_cli(
            "serve", "--model", model_dir / "photo2negative.onnx", "--provider", "cpu", "--port", port
        )
    assert r.exit_code == 1 and f"cannot listen on 127.0.0.1:{port}" in r.output


def test_loopback_hosts():
    from translator.serve.app import loopback_hosts

    local = loopback_hosts("127.0.0.1")
    assert local is not None and "localhost" in local
    assert loopback_hosts("::1") is not None and loopback_hosts("localhost") is not None
    assert loopback_hosts("0.0.0.0") is None and loopback_hosts("192.168.1.5") is None


def test_samples_that_suit_the_models_domain_come_first(tmp_path):
    from translator.serve.service import suited_samples

    assert suited_samples(["male", "female"]) == ["astronaut"]
    assert suited_samples(["cat", "dog"]) == ["chelsea"]
    assert suited_samples(["day", "night"]) == []


def test_the_catalogue_offers_a_face_model_the_face_sample(tmp_path):
    from runtime_helpers import GANTOOL_META

    from translator.serve.service import Service

    meta = dict(GANTOOL_META) | {"gantool.domain_from": "male", "gantool.domain_to": "female"}
    make_invert_model(tmp_path / "m2f.onnx", metadata=meta)
    svc = Service([tmp_path / "m2f.onnx"], options=RuntimeOptions(provider="cpu"),
                  log=lambda m: None)
    assert svc.describe()["entries"][0]["suited_samples"] == ["astronaut"]


def test_access_log_prints_requests_though_the_server_logs_warnings_only():
    import logging

    from translator.serve.server import _config

    _config(lambda *a: None, access_log=True, log_level="warning")
    assert logging.getLogger("uvicorn.access").isEnabledFor(logging.INFO)
    _config(lambda *a: None, access_log=False, log_level="warning")
    assert not logging.getLogger("uvicorn.access").isEnabledFor(logging.INFO)
