"""What ``gantool serve`` does, without the web framework: the loaded models, image upload
checks, translation, sampling, latent editing and interpolation.

The web layer (:mod:`.app`) only reads requests, calls :class:`Service` and turns
:class:`ServeError` into a status code, so everything here is testable without HTTP.
Nothing a client sends is used as a file path: models are looked up by ids assigned here
and bundled samples by name in a fixed table.
"""

from __future__ import annotations

import base64
import io
import math
import os
import queue
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from translator.errors import GantoolError
from translator.runtime.generate import latent_noise, run_generator
from translator.runtime.options import RuntimeOptions
from translator.runtime.session import Log, ModelSession, stderr_log

#: Image formats accepted from clients. Pillow can open many more, but each exotic decoder
#: is attack surface on a network service, and browsers could not show them anyway.
UPLOAD_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "WEBP", "BMP", "GIF")
DEFAULT_MAX_UPLOAD = 10 * 1024 * 1024
MAX_SAMPLES = 64
MAX_STEPS = 32
#: Latent values are standard-normal; anything past this is a client bug, not a sample.
MAX_LATENT_ABS = 100.0
SAMPLE_NAMES: tuple[str, ...] = ("astronaut", "coffee", "chelsea")
#: What each sample shows, in the words models name their domains with: the page offers a
#: model the samples that suit its domains first.
SAMPLE_SUBJECTS: dict[str, frozenset[str]] = {
    "astronaut": frozenset({"face", "faces", "portrait", "person", "people", "human", "male",
                            "female", "man", "men", "woman", "women", "young", "old"}),
    "coffee": frozenset({"food", "drink", "coffee", "cup", "meal"}),
    "chelsea": frozenset({"cat", "cats", "animal", "animals", "pet", "dog", "dogs"}),
}


def suited_samples(domains: Sequence[str]) -> list[str]:
    """The samples whose subject a domain name mentions (``"male"``, ``"cat2dog"``), in
    :data:`SAMPLE_NAMES` order."""
    words = {w for d in domains for w in re.split(r"[^a-z]+", d.lower()) if w}
    return [name for name in SAMPLE_NAMES if SAMPLE_SUBJECTS[name] & words]


class ServeError(GantoolError):
    """A request the server refuses, with the HTTP status that says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class ServedModel:
    """One loaded ONNX file and the id clients use for it."""

    id: str
    session: ModelSession
    _plain: Any = None
    #: Face-aware pipelines not in use. Each request borrows its own: a Haar cascade is not
    #: safe to share across threads, and a pipeline records the face count of its last call.
    #: Requests run inside the service's slots, so there are never more than ``workers``.
    _face_pool: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)

    @property
    def info(self):
        return self.session.info

    @property
    def kind(self) -> str:
        return self.session.info.kind

    def label(self) -> str:
        info = self.info
        if info.kind == "generation":
            return f"{self.id}: {info.model or 'generator'} (latent {info.latent_dim})"
        if info.domain_from and info.domain_to:
            return f"{info.domain_from} → {info.domain_to}"
        return self.id

    def plain_pipeline(self) -> Any:
        if self._plain is None:
            from translator.runtime.pipeline import FramePipeline

            self._plain = FramePipeline(self.session, None, batch_size=1)
        return self._plain

    @contextmanager
    def face_pipeline(self) -> Iterator[Any]:
        """Borrow a face-aware pipeline, created on first need, so a server that never uses
        face mode does not pay for a detector (and a broken detector only affects those
        requests)."""
        try:
            pipeline = self._face_pool.get_nowait()
        except queue.Empty:
            from translator.runtime.faces import create_detector
            from translator.runtime.pipeline import FaceOptions, FramePipeline

            try:
                detector = create_detector()  # the default detector, from the registry
            except GantoolError as exc:
                raise ServeError(503, f"face-aware mode is not available here: {exc}") from None
            pipeline = FramePipeline(self.session, FaceOptions(detector=detector), batch_size=1)
        try:
            yield pipeline
        finally:
            self._face_pool.put(pipeline)


@dataclass
class Timing:
    """Milliseconds spent on one request: all of it on the server, and in the model."""

    total_ms: float = 0.0
    model_ms: float = 0.0

    def headers(self, provider: str) -> dict[str, str]:
        return {
            "X-Gantool-Provider": provider,
            "X-Gantool-Elapsed-Ms": f"{self.total_ms:.1f}",
            "X-Gantool-Model-Ms": f"{self.model_ms:.1f}",
            # Browsers' developer tools show Server-Timing next to the request.
            "Server-Timing": f"model;dur={self.model_ms:.1f}, total;dur={self.total_ms:.1f}",
        }


def model_ids(paths: Sequence[Path]) -> list[str]:
    """Short URL-safe ids from file stems (``male2female``), numbered when they repeat."""
    ids: list[str] = []
    for path in paths:
        base = re.sub(r"[^A-Za-z0-9_-]+", "-", path.stem).strip("-")[:40] or "model"
        name, n = base, 2
        while name in ids:
            name, n = f"{base}-{n}", n + 1
        ids.append(name)
    return ids


def encode_png(image: np.ndarray) -> bytes:
    import cv2

    # Level 1: several times faster than the default for a slightly larger file, which is
    # the right trade on loopback.
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(image[..., ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 RGB array
        raise ServeError(500, "could not encode the result as PNG")
    return buf.tobytes()


def data_url(image: np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(encode_png(image)).decode("ascii")


def decode_upload(data: bytes, max_pixels: int | None = None) -> np.ndarray:
    """Uploaded bytes -> RGB uint8 array, or :class:`ServeError` saying what is wrong.

    415: not an image in an accepted format; 413: more pixels than ``max_pixels`` (None:
    the limit of every reader, ``GANTOOL_MAX_PIXELS``); 400: truncated/corrupt.
    """
    from PIL import UnidentifiedImageError

    from translator.data.images import ImageReadError, decode_rgb, open_capped

    if not data:
        raise ServeError(400, "the request has no image: send the image file as the request body")
    try:
        img = open_capped(io.BytesIO(data), max_pixels, formats=UPLOAD_FORMATS)
    except UnidentifiedImageError:
        raise ServeError(
            415, f"the upload is not an image in a supported format ({', '.join(UPLOAD_FORMATS)})"
        ) from None
    except ImageReadError as exc:
        raise ServeError(413, f"the image is {exc}") from None
    except Exception as exc:  # a corrupt header can raise nearly anything inside a plugin
        raise ServeError(400, f"the image could not be read: {_short(exc)}") from None
    if img.width < 1 or img.height < 1:
        raise ServeError(400, "the image is empty (0 pixels)")
    try:
        # Phone photos store rotation in EXIF; browsers honour it when showing the input,
        # so the result must too or input and output would not line up.
        with img:
            return decode_rgb(img)
    except Exception as exc:
        raise ServeError(400, f"the image is truncated or corrupt: {_short(exc)}") from None


#: Results larger than this (bytes of RGB) give their freed memory back to the system.
_TRIM_AFTER_BYTES = 16 * 1024 * 1024


def release_free_memory() -> None:
    """Hand freed heap pages back to the system (glibc's ``malloc_trim``; elsewhere
    nothing). Without it a server that decoded a few large uploads keeps their memory for
    good: glibc holds freed pages in each worker thread's arena."""
    global _malloc_trim
    if _malloc_trim is None:
        _malloc_trim = _find_malloc_trim()
    _malloc_trim(0)


def _find_malloc_trim() -> Callable[[int], Any]:
    import ctypes
    import ctypes.util

    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc
        return lambda _pad: 0


_malloc_trim: Callable[[int], Any] | None = None


def _short(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]


def _fallback_sample(name: str) -> np.ndarray:
    """A generated stand-in when scikit-image is not installed: smooth colour gradients."""
    h, w = 256, 256
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    phase = SAMPLE_NAMES.index(name) if name in SAMPLE_NAMES else 0
    r = 127 + 127 * np.sin(xx / 23 + phase)
    g = 127 + 127 * np.sin(yy / 31 + 2 * phase)
    b = 127 + 127 * np.cos((xx + yy) / 41)
    return np.stack([r, g, b], axis=-1).astype(np.uint8)


def load_sample(name: str) -> np.ndarray:
    """A bundled sample image by name (from scikit-image when it is installed)."""
    if name not in SAMPLE_NAMES:
        raise ServeError(404, f"unknown sample '{name}'; samples: {', '.join(SAMPLE_NAMES)}")
    try:
        from skimage import data
    except ImportError:
        return _fallback_sample(name)
    try:
        image = getattr(data, name)()
    except Exception:  # a data file missing from a trimmed install
        return _fallback_sample(name)
    return np.ascontiguousarray(image[..., :3])


class Service:
    """The models of one ``gantool serve`` and the operations the page calls."""

    def __init__(
        self,
        model_paths: Sequence[str | os.PathLike],
        options: RuntimeOptions = RuntimeOptions(),
        max_upload_bytes: int = DEFAULT_MAX_UPLOAD,
        max_pixels: int | None = None,
        workers: int = 2,
        log: Log = stderr_log,
    ) -> None:
        """Open ``model_paths`` as ``options`` say (provider, processing size, input range).

        ``max_pixels`` None: the pixel cap of every other reader, ``GANTOOL_MAX_PIXELS`` as
        it is when the server starts (a bad value fails the start, not each upload).
        """
        from translator.data.images import max_pixels as pixel_cap

        if not model_paths:
            raise GantoolError("give at least one model (--model FILE.onnx)")
        paths = [Path(p) for p in model_paths]
        self.models: dict[str, ServedModel] = {}
        for mid, path in zip(model_ids(paths), paths, strict=True):
            self.models[mid] = ServedModel(mid, options.open_model(path, log))
        self.max_upload_bytes = max_upload_bytes
        self.max_pixels = pixel_cap() if max_pixels is None else max_pixels
        # Bounds decoded images and model runs in memory at once, however many requests
        # the framework's thread pool accepts; the rest wait their turn.
        self._slots = threading.BoundedSemaphore(max(1, workers))
        self._samples: dict[str, tuple[np.ndarray, bytes]] = {}
        self._samples_lock = threading.Lock()

    # -- listing ---------------------------------------------------------------------------

    def model(self, model_id: str, kind: str | None = None) -> ServedModel:
        served = self.models.get(model_id)
        if served is None:
            known = ", ".join(self.models)
            raise ServeError(404, f"unknown model '{model_id[:80]}'; this server has: {known}")
        if kind is not None and served.kind != kind:
            other = "generate" if served.kind == "generation" else "translate"
            raise ServeError(
                400, f"model '{model_id}' is a {served.kind} model; use /api/{other}/{model_id} for it"
            )
        return served

    def describe(self) -> dict[str, Any]:
        """The page's model list: translation pairs from one run become one entry."""
        entries: list[dict[str, Any]] = []
        paired: set[str] = set()
        translation = [m for m in self.models.values() if m.kind == "translation"]
        for m in translation:
            if m.id in paired:
                continue
            partner = self._partner(m, [t for t in translation if t.id not in paired])
            members = [m, partner] if partner is not None else [m]
            paired.update(x.id for x in members)
            info = m.info
            title = (
                f"{info.model or 'translation'}: {info.domain_from} ↔ {info.domain_to}"
                if partner is not None
                else f"{m.id} ({info.model or 'translation'}{': ' + m.label() if info.domain_from else ''})"
            )
            entries.append(
                {
                    "kind": "translation",
                    "title": title,
                    "directions": [self._model_json(x) for x in members],
                    "suited_samples": suited_samples([info.domain_from, info.domain_to]),
                }
            )
        for m in self.models.values():
            if m.kind == "generation":
                entries.append({"kind": "generation", "title": m.label(), "model": self._model_json(m)})
        return {
            "entries": entries,
            "samples": list(SAMPLE_NAMES),
            "limits": {
                "max_upload_bytes": self.max_upload_bytes,
                "max_pixels": self.max_pixels,
                "max_samples": MAX_SAMPLES,
                "max_steps": MAX_STEPS,
            },
        }

    @staticmethod
    def _partner(m: ServedModel, others: list[ServedModel]) -> ServedModel | None:
        """The other direction of the same run: a2b <-> b2a with the domains swapped."""
        info = m.info
        want = {"a2b": "b2a", "b2a": "a2b"}.get(info.direction)
        if want is None or not info.domain_from or not info.domain_to:
            return None
        for o in others:
            oi = o.info
            if (
                o is not m
                and oi.direction == want
                and oi.domain_from == info.domain_to
                and oi.domain_to == info.domain_from
                and oi.model == info.model
            ):
                return o
        return None

    @staticmethod
    def _model_json(m: ServedModel) -> dict[str, Any]:
        info = m.info
        return {
            "id": m.id,
            "kind": info.kind,
            "label": m.label(),
            "model": info.model,
            "provider": m.session.provider_name,
            "input_size": info.input_size,
            "latent_dim": info.latent_dim,
            "domain_from": info.domain_from,
            "domain_to": info.domain_to,
            "direction": info.direction,
        }

    # -- samples ---------------------------------------------------------------------------

    def sample(self, name: str) -> tuple[np.ndarray, bytes]:
        """(RGB array, PNG bytes) of a bundled sample, decoded and encoded once."""
        with self._samples_lock:
            if name not in self._samples:
                image = load_sample(name)
                self._samples[name] = (image, encode_png(image))
            return self._samples[name]

    # -- translation -----------------------------------------------------------------------

    def translate(
        self, model_id: str, data: bytes | None = None, sample: str | None = None, faces: bool = False
    ) -> tuple[bytes, Timing, dict[str, str]]:
        """Translate an uploaded image (``data``) or a bundled sample; returns the result as
        PNG bytes (same size as the input), the timing and extra response headers."""
        served = self.model(model_id, "translation")
        start = time.perf_counter()
        with self._slots:
            if sample:
                image = self.sample(sample)[0]
            else:
                if data is not None and len(data) > self.max_upload_bytes:
                    raise ServeError(413, self._too_large(len(data)))
                image = decode_upload(data or b"", self.max_pixels)
            extra: dict[str, str] = {}
            t0 = time.perf_counter()
            result = _run_pipeline(served, image, faces, extra)
            model_ms = (time.perf_counter() - t0) * 1000
            png = encode_png(result)
        extra["X-Gantool-Size"] = f"{result.shape[1]}x{result.shape[0]}"
        if result.size > _TRIM_AFTER_BYTES:
            del image, result
            release_free_memory()
        return png, Timing((time.perf_counter() - start) * 1000, model_ms), extra

    def _too_large(self, size: int | None) -> str:
        limit = self.max_upload_bytes / (1024 * 1024)
        got = f" ({size / (1024 * 1024):.1f} MB)" if size else ""
        return f"the upload is too large{got}; the limit is {limit:.1f} MB"

    # -- generation ------------------------------------------------------------------------

    def generate(self, model_id: str, request: dict[str, Any]) -> dict[str, Any]:
        """Render latent vectors. ``request`` holds one of:

        - ``{"count": n, "seed": s}``: new standard-normal samples (seed optional);
        - ``{"latents": [[...], ...]}``: exactly these vectors (the sliders);
        - ``{"interpolate": {"a": [...], "b": [...], "steps": k, "mode": "slerp"|"linear"}}``.

        Returns ``{"images": [data URLs], "latents": [[...]], "seed": s|None, ...}``.
        """
        served = self.model(model_id, "generation")
        dim = int(served.info.latent_dim or 0)
        if not isinstance(request, dict):
            raise ServeError(400, "the request body must be a JSON object")
        seed: int | None = None
        if "latents" in request:
            latents = _latents(request["latents"], dim, "latents")
        elif "interpolate" in request:
            latents = _interpolation(request["interpolate"], dim)
        else:
            count = _int_field(request, "count", 16, 1, MAX_SAMPLES)
            seed = _int_field(request, "seed", None, 0, 2**32 - 1)
            if seed is None:
                seed = int(np.random.default_rng().integers(0, 2**31))
            latents = latent_noise(count, dim, seed)
        start = time.perf_counter()
        with self._slots:
            t0 = time.perf_counter()
            images = run_generator(served.session, latents)
            model_ms = (time.perf_counter() - t0) * 1000
            urls = [data_url(img) for img in images]
        timing = Timing((time.perf_counter() - start) * 1000, model_ms)
        return {
            "model": model_id,
            "images": urls,
            "latents": [[round(float(v), 5) for v in row] for row in latents],
            "seed": seed,
            "provider": served.session.provider_name,
            "elapsed_ms": round(timing.total_ms, 1),
            "model_ms": round(timing.model_ms, 1),
            "size": [int(images[0].shape[1]), int(images[0].shape[0])] if images else None,
        }


def _run_pipeline(served: ServedModel, image: np.ndarray, faces: bool, extra: dict[str, str]) -> np.ndarray:
    """Translate one decoded upload, adding the face count to ``extra`` in face mode.

    A model that cannot take this image (one 100000x1 becomes a sliver a few pixels high,
    too thin for a network's padding) fails in onnxruntime: that is this upload's problem,
    400 with the reason as ``gantool apply`` reports it, not a server error.
    """
    try:
        if not faces:
            return served.plain_pipeline().process([image], faces=False)[0]
        with served.face_pipeline() as pipeline:
            result = pipeline.process([image])[0]
            extra["X-Gantool-Faces"] = str(pipeline.last_face_counts[0] if pipeline.last_face_counts else 0)
            return result
    except Exception as exc:
        if not _from_onnxruntime(exc):
            raise  # a bug of ours stays a 500 with its traceback in the log
        height, width = image.shape[:2]
        message = f"the model cannot translate this {width}x{height} image: {_short(exc)}"
        raise ServeError(400, message) from None


def _from_onnxruntime(exc: Exception) -> bool:
    # onnxruntime's errors (InvalidArgument, Fail, ...) share no base class but Exception.
    return type(exc).__module__.startswith("onnxruntime")


_Default = TypeVar("_Default", int, None)


def _int_field(obj: dict[str, Any], key: str, default: _Default, lo: int, hi: int) -> int | _Default:
    value = obj.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise ServeError(422, f"'{key}' must be a whole number")
    if not lo <= value <= hi:
        raise ServeError(422, f"'{key}' must be between {lo} and {hi}")
    return value


def _vector(value: Any, dim: int, name: str) -> np.ndarray:
    if not isinstance(value, list) or len(value) != dim:
        raise ServeError(422, f"'{name}' must be a list of {dim} numbers (the model's latent size)")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
        raise ServeError(422, f"'{name}' must contain only numbers")
    vec = np.asarray(value, dtype=np.float64)
    if not np.all(np.isfinite(vec)) or np.max(np.abs(vec)) > MAX_LATENT_ABS:
        raise ServeError(422, f"'{name}' values must be finite and within ±{MAX_LATENT_ABS:g}")
    return vec.astype(np.float32)


def _latents(value: Any, dim: int, name: str) -> np.ndarray:
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_SAMPLES:
        raise ServeError(422, f"'{name}' must be a list of 1 to {MAX_SAMPLES} latent vectors")
    return np.stack([_vector(v, dim, f"{name}[{i}]") for i, v in enumerate(value)])


def _interpolation(spec: Any, dim: int) -> np.ndarray:
    if not isinstance(spec, dict):
        raise ServeError(422, "'interpolate' must be an object with 'a', 'b' and 'steps'")
    a, b = _vector(spec.get("a"), dim, "a"), _vector(spec.get("b"), dim, "b")
    steps = _int_field(spec, "steps", 8, 2, MAX_STEPS)
    assert steps is not None
    mode = spec.get("mode", "slerp")
    if mode not in ("slerp", "linear"):
        raise ServeError(422, "'mode' must be 'slerp' or 'linear'")
    return interpolate(a, b, steps, mode)


def interpolate(a: np.ndarray, b: np.ndarray, steps: int, mode: str = "slerp") -> np.ndarray:
    """``steps`` vectors from ``a`` to ``b`` (both ends included).

    Spherical interpolation is the default: in high dimensions Gaussian samples lie near a
    sphere, and the straight line between two of them passes through the low-norm middle,
    which generators rarely saw in training (White, "Sampling Generative Networks", 2016).
    """
    ts = np.linspace(0.0, 1.0, steps, dtype=np.float64)[:, None]
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    if mode == "slerp":
        na, nb = np.linalg.norm(a64), np.linalg.norm(b64)
        if na > 0 and nb > 0:
            cos = float(np.clip(np.dot(a64 / na, b64 / nb), -1.0, 1.0))
            omega = math.acos(cos)
            if omega > 1e-6 and math.sin(omega) > 1e-6:
                s = math.sin(omega)
                out = (np.sin((1 - ts) * omega) / s) * a64 + (np.sin(ts * omega) / s) * b64
                return out.astype(np.float32)
    return ((1 - ts) * a64 + ts * b64).astype(np.float32)
