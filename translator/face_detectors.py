"""``translator.face_detectors``: the face detector to use, from what plugins registered.

Shared by face-aware mode in the runtime and by the training data's ``--align-faces``, so it
sits below both. Detectors come from plugins only (``register_face_detectors``; the
built-in ones are in ``translator.plugins.faces``).
"""

from __future__ import annotations

from typing import Any

from .errors import GantoolError
from .registry import get_registry

#: The detectors ``--faces``, ``--align-faces`` and ``gantool serve`` try, in order, when
#: none is named: the first whose plugin and extras are installed (dlib gives landmarks).
DEFAULT_DETECTORS = ("dlib", "haar")


def create_detector(name: str | None = None, **options: Any) -> Any:
    """The face detector a plugin registered under ``name`` (the built-in faces plugin
    registers ``dlib``, ``haar`` and ``yunet``), made with ``options``; without a name, the
    first of :data:`DEFAULT_DETECTORS` that can be made."""
    if name is not None:
        return get_registry().face_detector(name).create(**options)
    return default_detector(**options)[1]


def default_detector(**options: Any) -> tuple[str, Any]:
    """(name, detector) of the first of :data:`DEFAULT_DETECTORS` that can be made."""
    problems = []
    for candidate in DEFAULT_DETECTORS:
        try:
            return candidate, get_registry().face_detector(candidate).create(**options)
        except GantoolError as exc:  # MissingExtra included
            problems.append(f"{candidate}: {exc}")
    raise GantoolError("no face detector could be made: " + "; ".join(problems))
