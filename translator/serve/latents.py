"""Reading a generation request's latent vectors: new samples, given vectors, or an
interpolation between two; every number checked before a model sees it."""

from __future__ import annotations

import math
from typing import Any, TypeVar

import numpy as np

from translator.runtime.generate import latent_noise

from .errors import ServeError

MAX_SAMPLES = 64
MAX_STEPS = 32
#: Latent values are standard-normal; anything past this is a client bug, not a sample.
MAX_LATENT_ABS = 100.0


def requested_latents(request: Any, dim: int) -> tuple[np.ndarray, int | None]:
    """The vectors a request asks for, and the seed of new samples (None otherwise).

    ``request`` holds one of ``{"count": n, "seed": s}`` (new standard-normal samples, seed
    optional), ``{"latents": [[...], ...]}`` or ``{"interpolate": {"a": [...], "b": [...],
    "steps": k, "mode": "slerp"|"linear"}}``.
    """
    if not isinstance(request, dict):
        raise ServeError(400, "the request body must be a JSON object")
    if "latents" in request:
        return _latents(request["latents"], dim, "latents"), None
    if "interpolate" in request:
        return _interpolation(request["interpolate"], dim), None
    count = _int_field(request, "count", 16, 1, MAX_SAMPLES)
    seed = _int_field(request, "seed", None, 0, 2**32 - 1)
    if seed is None:
        seed = int(np.random.default_rng().integers(0, 2**31))
    return latent_noise(count, dim, seed), seed


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
