"""The Starlette application behind ``gantool serve``.

Routes (all answers to ``/api`` are JSON, or PNG for images; errors are
``{"error": message}`` with the status that says why):

- ``GET /``: the page (``page.html``, vanilla JS, no build step);
- ``GET /api/models``: the models, their providers, the bundled samples and the limits;
- ``GET /api/samples/{name}.png``: a bundled sample image;
- ``POST /api/translate/{id}?faces=0|1[&sample=NAME]``: the image file as the request body
  (or no body with ``sample``); answers the translated PNG, with the provider and timings in
  ``X-Gantool-*`` headers;
- ``POST /api/generate/{id}``: JSON (see :meth:`Service.generate`).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from translator.runtime.options import RuntimeOptions
from translator.runtime.session import Log, stderr_log

from .budget import ByteBudget
from .errors import ServeError
from .samples import SAMPLE_NAMES
from .service import Service
from .uploads import DEFAULT_MAX_UPLOAD, too_large

MAX_JSON_BYTES = 1024 * 1024
#: Content types accepted for uploads besides ``image/*``: what curl and some browsers send
#: for a file they do not recognise. The bytes are checked either way.
_GENERIC_TYPES = ("application/octet-stream", "")

_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # The page's script and style are inline (one static file); nothing else may load.
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
        "img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
}


def loopback_hosts(host: str) -> list[str] | None:
    """Host names a server bound to ``host`` should answer to: for a loopback address only
    the local names, so a web page elsewhere cannot reach it through DNS rebinding; None
    (any name) when it is bound to a network interface on purpose."""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    return ["127.0.0.1", "localhost", "[::1]", "::1"] if loopback else None


class SameOriginMiddleware:
    """Refuse state-changing requests that a web page on another site sent.

    A page the user visits elsewhere can POST to the local server (a ``text/plain`` body
    needs no CORS preflight) and make it work, even if it cannot read the answer. Browsers
    name the sending page in ``Origin``: a POST whose Origin is not this server's own
    address (as the Host header gives it) is answered 403, and so is one with several
    Origin headers unless all are that address (whichever one a proxy or framework reads,
    it must not be a foreign one). Clients that send no Origin (curl, scripts) are not web
    pages and pass.
    """

    SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] not in self.SAFE_METHODS:
            foreign = _foreign_origin(scope["headers"])
            if foreign is not None:
                shown = foreign.decode("latin-1")[:80]
                response = error(403, f"refused: a page from another origin ({shown}) sent this request")
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _foreign_origin(headers: Sequence[tuple[bytes, bytes]]) -> bytes | None:
    """The first ``Origin`` header that is not this server's own address, or None.

    Every Origin and Host header counts, not the last one of each as a dict would keep:
    a second, friendly Origin must not hide a foreign first one.
    """
    hosts = {value for name, value in headers if name == b"host"}
    host = hosts.pop() if len(hosts) == 1 else b""  # several different Hosts: none is ours
    for name, value in headers:
        if name == b"origin" and not _same_origin(value, host):
            return value
    return None


def _same_origin(origin: bytes, host: bytes) -> bool:
    parts = urlsplit(origin.decode("latin-1"))
    return parts.scheme in ("http", "https") and bool(host) and parts.netloc.encode("latin-1") == host


def error(status: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status_code=status, headers=headers)


def declared_size(request: Request, limit: int) -> int | None:
    """The body size the client announces (None: it streams without ``Content-Length``),
    refusing (413) more than ``limit`` bytes before any is read."""
    declared = request.headers.get("content-length")
    if declared is None:
        return None
    try:
        size = int(declared)
    except ValueError:
        raise ServeError(400, "the Content-Length header is not a number") from None
    if size > limit:
        raise ServeError(413, too_large(size, limit))
    return size


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing (413) more than ``limit`` bytes before reading them when
    the client says how many it sends, and as soon as the count passes it otherwise."""
    declared_size(request, limit)
    chunks: list[bytes] = []
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise ServeError(413, too_large(None, limit))
            chunks.append(chunk)
    except ClientDisconnect:
        # Nobody is left to read an answer; this status is only for the log.
        raise ServeError(400, "the client disconnected before sending the whole body") from None
    return b"".join(chunks)


def _flag(request: Request, name: str) -> bool:
    value = request.query_params.get(name, "0").strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ServeError(400, f"query parameter '{name}' must be 0 or 1")


def create_app(
    model_paths: Sequence[str | os.PathLike],
    options: RuntimeOptions = RuntimeOptions(),
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD,
    max_pixels: int | None = None,
    workers: int = 2,
    allowed_hosts: Sequence[str] | None = None,
    log: Log = stderr_log,
) -> Starlette:
    """The web app serving ``model_paths`` (loaded now, so a bad file fails before binding).

    ``options``: how the models are opened (provider, processing size, input range).
    ``allowed_hosts``: Host header names to answer (see :func:`loopback_hosts`); None: any.
    ``workers``: requests that decode images or run a model at the same time.
    ``max_pixels``: the largest upload in pixels; None: ``GANTOOL_MAX_PIXELS`` or the
    default of every other reader (:func:`translator.data.images.max_pixels`).
    """
    svc = Service(model_paths, options, max_upload_bytes=max_upload_bytes, max_pixels=max_pixels,
                  workers=workers, log=log)
    middleware: list[Middleware] = [Middleware(SameOriginMiddleware)]
    if allowed_hosts is not None:
        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts)))
    handlers: dict[Any, Any] = {ServeError: on_serve_error, HTTPException: on_http_error, Exception: on_crash}
    app = Starlette(routes=_Routes(svc, workers).routes(), middleware=middleware,
                    exception_handlers=handlers)
    app.state.service = svc
    return app


class _Routes:
    """The request handlers over one :class:`Service`."""

    def __init__(self, svc: Service, workers: int) -> None:
        self.svc = svc
        # Uploads reserve their size here before their body is read: at most this many bytes
        # of bodies sit in memory, however many clients connect, so the server's memory is
        # bounded by design (as many full-size uploads as 2 x ``workers``, + ``workers``
        # decoded images), not by the number of connections. See budget.py for why bytes,
        # not requests.
        self.uploads = ByteBudget(2 * max(1, workers) * svc.max_upload_bytes)
        self.page = resources.files("translator.serve").joinpath("page.html").read_text(encoding="utf-8")

    def routes(self) -> list[Route]:
        return [
            Route("/", self.index, methods=["GET"]),
            Route("/api/models", self.models, methods=["GET"]),
            Route("/api/samples/{name}.png", self.sample, methods=["GET"]),
            Route("/api/translate/{model_id}", self.translate, methods=["POST"]),
            Route("/api/generate/{model_id}", self.generate, methods=["POST"]),
        ]

    async def index(self, request: Request) -> Response:
        return HTMLResponse(self.page, headers=_SECURITY_HEADERS)

    async def models(self, request: Request) -> Response:
        return JSONResponse(self.svc.describe())

    async def sample(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in SAMPLE_NAMES:
            raise ServeError(404, f"unknown sample '{name[:80]}'; samples: {', '.join(SAMPLE_NAMES)}")
        png = (await run_in_threadpool(self.svc.sample, name))[1]
        return Response(png, media_type="image/png", headers={"Cache-Control": "max-age=3600"})

    async def translate(self, request: Request) -> Response:
        svc = self.svc
        model_id = request.path_params["model_id"]
        served = svc.model(model_id, "translation")  # 404/400 before reading any upload
        faces = _flag(request, "faces")
        sample_name = request.query_params.get("sample")
        data: bytes | None = None
        if sample_name:
            if sample_name not in SAMPLE_NAMES:
                raise ServeError(404, f"unknown sample '{sample_name[:80]}'")
        else:
            _check_upload_type(request)
        # A bundled sample holds no body, so it reserves nothing.
        size = 0 if sample_name else declared_size(request, svc.max_upload_bytes)
        async with self.uploads.reserve(svc.max_upload_bytes if size is None else size):
            if not sample_name:
                data = await read_body(request, svc.max_upload_bytes)
            png, timing, extra = await run_in_threadpool(svc.translate, model_id, data, sample_name, faces)
        headers = {**timing.headers(served.session.provider_name), **extra}
        # Domain names come from the model's metadata: keep them from breaking the header.
        name = re.sub(r"[^A-Za-z0-9_.-]+", "-", served.info.domain_to or model_id) + ".png"
        headers["Content-Disposition"] = f'inline; filename="{name}"'
        return Response(png, media_type="image/png", headers=headers)

    async def generate(self, request: Request) -> Response:
        model_id = request.path_params["model_id"]
        served = self.svc.model(model_id, "generation")
        body = await read_body(request, MAX_JSON_BYTES)
        try:
            payload = json.loads(body or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ServeError(400, f"the request body is not valid JSON: {exc}") from None
        except RecursionError:
            raise ServeError(400, "the request body is not valid JSON: nested too deeply") from None
        result = await run_in_threadpool(self.svc.generate, model_id, payload)
        timing_headers = {
            "X-Gantool-Provider": served.session.provider_name,
            "X-Gantool-Elapsed-Ms": str(result["elapsed_ms"]),
        }
        return JSONResponse(result, headers=timing_headers)


def _check_upload_type(request: Request) -> None:
    """Refuse (415) a body that is not an image file: a form, or another declared type."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype.startswith("multipart/"):
        raise ServeError(
            415,
            "send the image file itself as the request body (not a multipart form), "
            "e.g. curl --data-binary @photo.jpg -H 'Content-Type: image/jpeg' URL",
        )
    if not (ctype.startswith("image/") or ctype in _GENERIC_TYPES):
        raise ServeError(415, f"expected an image upload, got Content-Type '{ctype[:80]}'")


async def on_serve_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServeError)
    return error(exc.status, exc.message)


async def on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    messages = {404: f"no such page: {request.url.path[:200]}", 405: "method not allowed here"}
    return error(exc.status_code, messages.get(exc.status_code, str(exc.detail)), exc.headers)


async def on_crash(request: Request, exc: Exception) -> Response:
    # A bug must cost one request a 500, never the server. Starlette re-raises after this
    # answer so that uvicorn logs the traceback; we do not log it a second time.
    return error(500, f"internal error: {type(exc).__name__}: {str(exc)[:200]}")
