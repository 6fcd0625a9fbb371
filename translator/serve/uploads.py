"""Images in and out of ``gantool serve``: checking and decoding uploads, encoding results,
and giving the memory of large ones back."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from typing import Any

import numpy as np

from .errors import ServeError

#: Image formats accepted from clients. Pillow can open many more, but each exotic decoder
#: is attack surface on a network service, and browsers could not show them anyway.
UPLOAD_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "WEBP", "BMP", "GIF")
DEFAULT_MAX_UPLOAD = 10 * 1024 * 1024


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
        raise ServeError(400, f"the image could not be read: {short_reason(exc)}") from None
    if img.width < 1 or img.height < 1:
        raise ServeError(400, "the image is empty (0 pixels)")
    try:
        # Phone photos store rotation in EXIF; browsers honour it when showing the input,
        # so the result must too or input and output would not line up.
        with img:
            return decode_rgb(img)
    except Exception as exc:
        raise ServeError(400, f"the image is truncated or corrupt: {short_reason(exc)}") from None


#: Results larger than this (bytes of RGB) give their freed memory back to the system.
TRIM_AFTER_BYTES = 16 * 1024 * 1024


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


def short_reason(exc: Exception) -> str:
    """The first line of an error, for a client: short, and never a traceback."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]


def too_large(size: int | None, limit: int) -> str:
    got = f" ({size / (1024 * 1024):.1f} MB)" if size else ""
    return f"the upload is too large{got}; the limit is {limit / (1024 * 1024):.1f} MB"
