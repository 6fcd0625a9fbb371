"""What ``gantool serve`` does, without the web framework: the loaded models, translation,
sampling, latent editing and interpolation (uploads are checked in :mod:`.uploads`, latent
requests read in :mod:`.latents`, samples come from :mod:`.samples`).

The web layer (:mod:`.app`) only reads requests, calls :class:`Service` and turns
:class:`ServeError` into a status code, so everything here is testable without HTTP.
Nothing a client sends is used as a file path: models are looked up by ids assigned here
and bundled samples by name in a fixed table.
"""

from __future__ import annotations

import os
import queue
import re
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from translator.errors import GantoolError
from translator.runtime.generate import run_generator
from translator.runtime.options import RuntimeOptions
from translator.runtime.session import Log, ModelInfo, ModelSession, stderr_log

from .errors import ServeError
from .latents import MAX_SAMPLES, MAX_STEPS, requested_latents
from .samples import SAMPLE_NAMES, load_sample, suited_samples
from .uploads import (
    DEFAULT_MAX_UPLOAD,
    TRIM_AFTER_BYTES,
    data_url,
    decode_upload,
    encode_png,
    release_free_memory,
    short_reason,
    too_large,
)


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
    def info(self) -> ModelInfo:
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
            from translator.face_detectors import create_detector
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
                    raise ServeError(413, too_large(len(data), self.max_upload_bytes))
                image = decode_upload(data or b"", self.max_pixels)
            extra: dict[str, str] = {}
            t0 = time.perf_counter()
            result = _run_pipeline(served, image, faces, extra)
            model_ms = (time.perf_counter() - t0) * 1000
            png = encode_png(result)
        extra["X-Gantool-Size"] = f"{result.shape[1]}x{result.shape[0]}"
        if result.size > TRIM_AFTER_BYTES:
            del image, result
            release_free_memory()
        return png, Timing((time.perf_counter() - start) * 1000, model_ms), extra

    # -- generation ------------------------------------------------------------------------

    def generate(self, model_id: str, request: dict[str, Any]) -> dict[str, Any]:
        """Render latent vectors. ``request`` holds one of:

        - ``{"count": n, "seed": s}``: new standard-normal samples (seed optional);
        - ``{"latents": [[...], ...]}``: exactly these vectors (the sliders);
        - ``{"interpolate": {"a": [...], "b": [...], "steps": k, "mode": "slerp"|"linear"}}``
          (see :func:`.latents.requested_latents`).

        Returns ``{"images": [data URLs], "latents": [[...]], "seed": s|None, ...}``.
        """
        served = self.model(model_id, "generation")
        latents, seed = requested_latents(request, int(served.info.latent_dim or 0))
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
        message = f"the model cannot translate this {width}x{height} image: {short_reason(exc)}"
        raise ServeError(400, message) from None


def _from_onnxruntime(exc: Exception) -> bool:
    # onnxruntime's errors (InvalidArgument, Fail, ...) share no base class but Exception.
    return type(exc).__module__.startswith("onnxruntime")


