"""The ``gantool.*`` keys that make an exported ONNX file self-describing.

Torch-free and onnx-free at import time: the exporter writes these keys, the runtime and
``gantool inspect`` read them. Values are always strings (ONNX ``metadata_props`` are
string pairs); numbers are written in decimal, ranges as ``"lo,hi"``. :class:`ModelMetadata`
is the typed form: the exporter builds one, the runtime reads one back through the checks
below.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
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


# -- typed ----------------------------------------------------------------------------------
KINDS: tuple[str, ...] = ("translation", "generation")
CHANNEL_ORDERS: tuple[str, ...] = ("RGB", "BGR")


def check_kind(value: Any, where: str) -> str:
    kind = str(value)
    if kind not in KINDS:
        from .errors import GantoolError

        raise GantoolError(f"{where}: unknown gantool.kind '{kind}'")
    return kind


def check_channel_order(value: Any, where: str) -> str:
    order = str(value).upper()
    if order not in CHANNEL_ORDERS:
        from .errors import GantoolError

        raise GantoolError(f"{where}: unsupported channel order '{order}'")
    return order


#: The fields read through a check, in the order a file's problems are reported; each
#: field's key is ``PREFIX + name``. The other fields are text, taken as written.
_CHECKS: dict[str, Callable[[str, str], Any]] = {
    "kind": check_kind,
    "latent_dim": check_latent_dim,
    "input_size": check_input_size,
    "input_range": parse_input_range,
    "channel_order": check_channel_order,
    "size_multiple": check_size_multiple,
}


@dataclass(frozen=True)
class ModelMetadata:
    """The ``gantool.*`` entries of one model file, typed: what the exporter writes and the
    runtime reads.

    Every field may be unstated ("" or None, as a file written by another tool leaves it);
    the runtime then infers it from the graph or takes it from a flag. ``extra`` holds the
    other ``gantool.*`` entries (a plugin's, int8's), prefix kept, as written.
    """

    kind: str = ""  # "translation" | "generation"
    model: str = ""  # registered model name, e.g. "cyclegan"
    direction: str = ""  # "a2b" | "b2a" (translation only)
    domain_from: str = ""
    domain_to: str = ""
    input_size: int | None = None  # training resolution in pixels
    size_multiple: int | None = None  # height and width must divide by this
    input_range: tuple[float, float] | None = None
    channel_order: str = ""  # "RGB" | "BGR"
    latent_dim: int | None = None  # generation only
    version: str = ""  # translator.__version__ that wrote the file
    precision: str = ""  # "fp32" | "fp16" | "int8"
    #: Training step of the exported weights, as written (the runtime does not read it).
    checkpoint_step: str = ""
    extra: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_props(cls, props: Mapping[str, str], where: str = "metadata") -> ModelMetadata:
        """Read a file's metadata (all of it; entries without the prefix are ignored).

        An absent or empty entry leaves its field unstated; a stated one that fails its
        check is a :class:`GantoolError` naming ``where`` (the file).
        """
        entries = gantool_entries(props)
        values: dict[str, Any] = {}
        for name in [*_CHECKS, *(n for n in _FIELD_NAMES if n not in _CHECKS)]:
            text = entries.get(PREFIX + name, "")
            if text != "":
                check = _CHECKS.get(name)
                values[name] = check(text, where) if check else text
        extra = {k: v for k, v in entries.items() if k.removeprefix(PREFIX) not in _FIELD_NAMES}
        return cls(**values, extra=extra)

    def to_props(self) -> dict[str, str]:
        """The ``gantool.*`` entries to write: stated fields over ``extra``, as strings
        (numbers in decimal, the range as ``"lo,hi"``)."""
        props = dict(self.extra)
        for name in _FIELD_NAMES:
            value = getattr(self, name)
            if value is not None and value != "":
                props[PREFIX + name] = _as_text(value)
        return props


_FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in fields(ModelMetadata) if f.name != "extra")


def _as_text(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(_number(v) for v in value)
    return str(value)


def _number(value: float) -> str:
    """-1.0 -> "-1", 0.5 -> "0.5": whole numbers without a point, others exactly."""
    number = float(value)
    return str(int(number)) if number.is_integer() else repr(number)
