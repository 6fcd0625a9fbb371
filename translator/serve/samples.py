"""The bundled sample images the page offers, by name from a fixed table (nothing a client
sends is used as a path)."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from .errors import ServeError

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
