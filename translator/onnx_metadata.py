"""The ``gantool.*`` keys that make an exported ONNX file self-describing.

Torch-free and onnx-free at import time: the exporter writes these keys, the runtime and
``gantool inspect`` read them. Values are always strings (ONNX ``metadata_props`` are
string pairs); numbers are written in decimal, ranges as ``"lo,hi"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PREFIX = "gantool."

KIND = PREFIX + "kind"  # "translation" | "generation"
MODEL = PREFIX + "model"  # registered model name, e.g. "cyclegan"
DIRECTION = PREFIX + "direction"  # "a2b" | "b2a" (translation only)
DOMAIN_FROM = PREFIX + "domain_from"  # domain name of the input, e.g. "male"
DOMAIN_TO = PREFIX + "domain_to"  # domain name of the output, e.g. "female"
INPUT_SIZE = PREFIX + "input_size"  # training resolution in pixels
SIZE_MULTIPLE = PREFIX + "size_multiple"  # height and width must divide by this
INPUT_RANGE = PREFIX + "input_range"  # "-1,1"
CHANNEL_ORDER = PREFIX + "channel_order"  # "RGB"
LATENT_DIM = PREFIX + "latent_dim"  # generation only
VERSION = PREFIX + "version"  # translator.__version__ that wrote the file
PRECISION = PREFIX + "precision"  # "fp32" | "fp16" (weights; inputs/outputs stay float32)
CHECKPOINT_STEP = PREFIX + "checkpoint_step"  # training step of the exported weights

#: Keys the exporter owns; a plugin's ``ExportableGenerator.metadata`` cannot override them.
CORE_KEYS: tuple[str, ...] = (
    KIND, MODEL, DIRECTION, DOMAIN_FROM, DOMAIN_TO, INPUT_SIZE, SIZE_MULTIPLE, INPUT_RANGE,
    CHANNEL_ORDER, LATENT_DIM, VERSION, PRECISION, CHECKPOINT_STEP,
)


def prefixed(entries: Mapping[str, Any]) -> dict[str, str]:
    """``{"architecture": "unet_256"}`` -> ``{"gantool.architecture": "unet_256"}``.

    Keys that already carry the prefix are kept as they are, so plugins may write either.
    """
    return {(k if k.startswith(PREFIX) else PREFIX + k): str(v) for k, v in entries.items()}


def gantool_entries(props: Mapping[str, str]) -> dict[str, str]:
    """Only the ``gantool.*`` entries of a metadata mapping, prefix kept, sorted by key."""
    return {k: props[k] for k in sorted(props) if k.startswith(PREFIX)}


def strip_prefix(props: Mapping[str, str]) -> dict[str, str]:
    """``gantool.*`` entries keyed without the prefix (``{"kind": "translation", ...}``)."""
    return {k.removeprefix(PREFIX): v for k, v in gantool_entries(props).items()}


def read_props(model: Any) -> dict[str, str]:
    """All ``metadata_props`` of an ``onnx.ModelProto`` as a dict (later duplicates win)."""
    return {p.key: p.value for p in model.metadata_props}


def write_props(model: Any, entries: Mapping[str, str]) -> None:
    """Set ``metadata_props`` entries on an ``onnx.ModelProto`` in place.

    Existing keys are updated and other existing entries kept (unlike
    ``onnx.helper.set_model_props``, which drops everything it is not given).
    """
    merged = read_props(model)
    merged.update({k: str(v) for k, v in entries.items()})
    del model.metadata_props[:]
    for key, value in merged.items():
        prop = model.metadata_props.add()
        prop.key, prop.value = key, value


# -- sane ranges --------------------------------------------------------------------------
# Sizes read from a file or a flag decide how much memory a frame costs, so each is checked
# here, in one place, before anything is allocated from it.
MIN_INPUT_SIZE, MAX_INPUT_SIZE = 8, 2048
MAX_SIZE_MULTIPLE = 512
MAX_LATENT_DIM = 65536
MAX_RANGE_ABS = 1e6


def checked_int(value: Any, name: str, lo: int, hi: int, where: str) -> int:
    """``value`` (a string from metadata, or a number from a flag) as an int in ``lo..hi``,
    else :class:`GantoolError` naming ``where`` and the allowed range."""
    from .errors import GantoolError

    text = str(value).strip()
    try:
        number = int(text)
    except ValueError:
        number = None
    if number is None or not lo <= number <= hi:
        raise GantoolError(f"{where}: {name} must be a whole number from {lo} to {hi}, not '{text[:40]}'")
    return number


def check_input_size(value: Any, where: str, name: str = "gantool.input_size") -> int:
    return checked_int(value, name, MIN_INPUT_SIZE, MAX_INPUT_SIZE, where)


def check_size_multiple(value: Any, where: str) -> int:
    return checked_int(value, "gantool.size_multiple", 1, MAX_SIZE_MULTIPLE, where)


def check_latent_dim(value: Any, where: str) -> int:
    return checked_int(value, "gantool.latent_dim", 1, MAX_LATENT_DIM, where)


def parse_input_range(text: str, where: str, name: str = "gantool.input_range") -> tuple[float, float]:
    """``"-1,1"`` -> ``(-1.0, 1.0)``: two finite numbers, the second larger."""
    import math

    from .errors import GantoolError

    try:
        lo, hi = (float(p) for p in str(text).replace(" ", "").split(","))
    except ValueError:
        lo = hi = math.nan
    if not (math.isfinite(lo) and math.isfinite(hi) and -MAX_RANGE_ABS <= lo < hi <= MAX_RANGE_ABS):
        raise GantoolError(
            f"{where}: bad {name} '{str(text)[:40]}': expected two finite numbers like -1,1, "
            "the second larger"
        )
    return lo, hi
