"""Reading images robustly: any common format and mode in, RGB uint8 out."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".ppm", ".pgm", ".pbm"}
)

#: Decompression-bomb guard: images with more pixels are refused before decoding. Below
#: Pillow's own limits (89 Mpx warns, 179 Mpx fails) so that it is ours that acts, with one
#: clear reason; ``GANTOOL_MAX_PIXELS`` raises or lowers it.
DEFAULT_MAX_PIXELS = 64_000_000
MAX_PIXELS_ENV = "GANTOOL_MAX_PIXELS"


class ImageReadError(ValueError):
    """An image file that cannot be decoded; the message says why."""


#: Icon containers: their directory gives at most 256x256 whatever the embedded PNG holds,
#: so the pixel cap could act only after decoding it.
UNSIZED_CONTAINERS = frozenset({"ICO", "CUR", "ICNS"})


def max_pixels() -> int:
    """The pixel cap: ``GANTOOL_MAX_PIXELS`` when set, else :data:`DEFAULT_MAX_PIXELS`."""
    from translator.errors import GantoolError

    text = os.environ.get(MAX_PIXELS_ENV, "").strip().replace("_", "")
    if not text:
        return DEFAULT_MAX_PIXELS
    if not text.isdigit() or int(text) < 1:
        raise GantoolError(f"{MAX_PIXELS_ENV}={text[:40]} is not a whole number of pixels (e.g. 64000000)")
    return int(text)


def open_capped(source, cap: int | None = None, formats: tuple[str, ...] | None = None):
    """``PIL.Image.open`` that refuses, from the header alone, images over ``cap`` pixels
    (default :func:`max_pixels`) with :class:`ImageReadError` ("too large ...").

    Pillow's own bomb check is set to twice the cap (it only warns below that), and its
    warnings are silenced: the cap here always acts first and says why.
    """
    import warnings

    from PIL import Image

    cap = max_pixels() if cap is None else cap
    Image.MAX_IMAGE_PIXELS = cap
    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
    # Pillow warns about damaged metadata (corrupt EXIF...) it then skips; the user hears of
    # a damaged image from us, once, if it cannot be decoded.
    warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
    try:
        img = Image.open(source, formats=formats)
    except Image.DecompressionBombError:
        raise ImageReadError(f"too large (more than twice the limit of {cap:,} pixels)") from None
    if img.format in UNSIZED_CONTAINERS:
        img.close()
        raise ImageReadError(f"{img.format} files are not read: their header does not say how "
                             "large the embedded image is (save it as PNG)")
    if img.width * img.height > cap:
        img.close()
        raise ImageReadError(
            f"too large ({img.width}x{img.height} = {img.width * img.height:,} pixels; "
            f"the limit is {cap:,}, set by {MAX_PIXELS_ENV})"
        )
    return img


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Decode ``path`` to an ``[H, W, 3]`` RGB uint8 array.

    EXIF orientation is applied; grayscale, palette, CMYK, RGBA (composited on white) and
    16-bit images are converted. Raises :class:`ImageReadError` with a short reason.
    """
    from PIL import UnidentifiedImageError

    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise ImageReadError("empty file")
        with open_capped(path) as img:
            return decode_rgb(img)
    except ImageReadError:
        raise
    except FileNotFoundError:
        raise ImageReadError("no such file") from None
    except UnidentifiedImageError:
        raise ImageReadError("not an image") from None
    except PermissionError:
        raise ImageReadError("permission denied") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError(f"corrupt or truncated ({exc})") from None


def decode_rgb(img) -> np.ndarray:
    """An opened PIL image (see :func:`open_capped`) decoded to RGB with its EXIF
    orientation applied. In place and without needless conversions: each copy of a large
    image costs as much memory as the image."""
    from PIL import ImageOps

    img.load()
    ImageOps.exif_transpose(img, in_place=True)
    return pil_to_rgb(img)


def _float_to_uint8(arr: np.ndarray) -> np.ndarray:
    """A float image stretched over 0..255 by its finite values. NaN and infinite pixels
    (float TIFFs mark missing data so) become black: casting them is undefined and makes
    numpy print warnings."""
    finite = np.isfinite(arr)
    if not finite.any():
        return np.zeros(arr.shape, np.uint8)
    lo, hi = float(arr[finite].min()), float(arr[finite].max())
    with np.errstate(over="ignore", invalid="ignore"):  # a range wider than float64 holds
        scaled = (np.where(finite, arr, lo) - lo) / max(hi - lo, 1e-12) * 255.0
    return np.nan_to_num(np.clip(scaled, 0, 255), nan=0.0).astype(np.uint8)


def pil_to_rgb(img) -> np.ndarray:
    """Any PIL image mode to an ``[H, W, 3]`` RGB uint8 array."""
    from PIL import Image

    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if arr.max() > 255 else 255.0
        arr = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(arr[..., None], 3, axis=2)
    if img.mode == "F":
        return np.repeat(_float_to_uint8(np.asarray(img, dtype=np.float64))[..., None], 3, axis=2)
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return np.ascontiguousarray(np.asarray(img if img.mode == "RGB" else img.convert("RGB"), dtype=np.uint8))


def shown_path(path: str | os.PathLike) -> str:
    """A path for a one-line report: as it is when printable, else quoted with escapes
    (a newline in a file name must not split the report's line)."""
    text = str(path)
    if text.isprintable():
        return text
    return '"' + text.encode("unicode_escape").decode("ascii").replace('"', '\\"') + '"'


def is_image_path(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


@dataclass
class ScanResult:
    """Image files found in a folder, and those skipped with their reasons."""

    paths: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    def describe_skipped(self, limit: int = 3) -> str:
        if not self.skipped:
            return ""
        shown = ", ".join(f"{shown_path(p.name)} ({why})" for p, why in self.skipped[:limit])
        more = f" and {len(self.skipped) - limit} more" if len(self.skipped) > limit else ""
        return f"skipped {len(self.skipped)} unreadable file(s): {shown}{more}"


def check_image_header(path: Path) -> str | None:
    """A cheap validity check (reads the header only): ``None`` if fine, else the reason."""
    from PIL import UnidentifiedImageError

    try:
        if path.stat().st_size == 0:
            return "empty file"
        with open_capped(path):
            return None
    except ImageReadError as exc:
        return str(exc)
    except UnidentifiedImageError:
        return "not an image"
    except PermissionError:
        return "permission denied"
    except OSError as exc:
        return f"unreadable ({exc})"


def scan_images(root: Path, recursive: bool = True, verify: bool = True) -> ScanResult:
    """Image files under ``root`` in sorted order; with ``verify``, header-checked."""
    result = ScanResult()
    candidates: Iterable[Path] = root.rglob("*") if recursive else root.iterdir()
    for path in sorted(p for p in candidates if p.is_file() and is_image_path(p)):
        reason = check_image_header(path) if verify else None
        if reason is None:
            result.paths.append(path)
        else:
            result.skipped.append((path, reason))
    return result
