"""Training configuration, and model config dataclasses turned into CLI flags and back."""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, Literal

from .errors import GantoolError


@dataclass
class TrainConfig:
    """What every model's training shares; the fields are ``gantool train`` flags."""

    model: str = ""
    data: str = field(default="demo", metadata={
        "help": "a folder (CelebA root, trainA/trainB, one folder per domain, images) or a "
                "built-in set: demo, digits", "required": True})
    domain_a: str | None = field(default=None, metadata={
        "help": "first domain (translation) or a filter (generation), e.g. male, 6, attr:Smiling"})
    domain_b: str | None = field(default=None, metadata={"help": "second domain, e.g. female"})
    direction: str = field(default="AtoB", metadata={
        "help": "which side of the data a translation model learns to make: AtoB (domain "
                "A in, B out) or BtoA (the sides swapped, as the reference's --direction)",
        "choices": ["AtoB", "BtoA"]})
    size: int = field(default=64, metadata={"help": "training resolution in pixels", "min": 8,
                                            "max": 4096})
    steps: int | None = field(default=None, metadata={
        "help": "training steps (batches); 1000 unless --epochs is given", "resume": True})
    epochs: float | None = field(default=None, metadata={
        "help": "train for this many passes over the larger domain instead of --steps",
        "min": 0.0, "min_open": True, "resume": True})
    align_faces: str = field(default="auto", metadata={
        "help": "align each training face to the template the runtime's face mode uses "
                "(eyes level, one scale); auto: on for data sets of faces (CelebA)",
        "choices": ["auto", "on", "off"]})
    batch_size: int = field(default=16, metadata={"help": "images per step per process", "min": 1,
                                                  "max": 65536})
    max_images: int | None = field(default=None, metadata={
        "help": "train on at most N images per domain (a fixed subset, the same every run)"})
    preprocess: str | None = field(default=None, metadata={
        "help": "how images become --size squares: resize-and-crop (1.12x, random crop), "
                "crop (random crop at the image's own scale) or none (resize, centre crop); "
                "default: the model's (CycleGAN resize-and-crop, DCGAN family none)",
        "choices": ["resize-and-crop", "crop", "none"]})
    flip: bool | None = field(default=None, metadata={
        "help": "mirror half of the training images at random; default: the model's choice "
                "(CycleGAN yes), but not for data where a mirror image means something else "
                "(digits)"})
    diffaug: str = field(default="auto", metadata={
        "help": "differentiable augmentation of every image the discriminator sees (Zhao "
                "et al. 2020): a comma list of color, translation, cutout, or none; auto: "
                "all three for generation models on at most 1000 images, else none"})
    ema: float = field(default=0.0, metadata={
        "help": "keep an exponential moving average of the generators' weights with this "
                "decay per step (e.g. 0.999; 0: off) and use it for samples, evaluation, "
                "translation and export", "min": 0.0, "max": 0.99999})
    device: str = field(default="auto", metadata={
        "help": "auto, cpu, cuda or cuda:N", "resume": True})
    precision: str = field(default="auto", metadata={
        "help": "auto (bf16/fp16 on CUDA, fp32 on CPU), fp32, bf16 or fp16",
        "choices": ["auto", "fp32", "bf16", "fp16"]})
    compile: bool = field(default=False, metadata={"help": "torch.compile the networks"})
    cuda_graphs: bool = field(default=False, metadata={
        "help": "with --compile on CUDA: replay each network as CUDA graphs (torch.compile's "
                "reduce-overhead mode), for small batches where launching kernels is the "
                "bottleneck; ignored on the CPU"})
    deterministic: bool = field(default=False, metadata={
        "help": "the same bits on every run, e.g. to check a resume on a GPU: deterministic "
                "algorithms, fp32, no cuDNN autotuning, no TF32 (slower)"})
    # Every random stream takes the seed: numpy's want 0 or more and torch's fit 64 bits.
    seed: int = field(default=0, metadata={"help": "random seed (data order, init, noise)",
                                           "min": 0, "max": 2**32 - 1})
    out: str | None = field(default=None, metadata={
        "help": "run folder (default runs/MODEL-TIMESTAMP)"})
    cache: bool = field(default=True, metadata={
        "help": "keep decoded, resized images in RUN/cache so later epochs skip decoding"})
    workers: int = field(default=-1, metadata={
        "help": "data loader processes (-1: automatic: none for in-memory data, and on the "
                "CPU threads plus workers stay within the free cores)", "min": -1, "resume": True})
    threads: int = field(default=-1, metadata={
        "help": "torch CPU threads (-1: automatic: OMP_NUM_THREADS when set, else one per "
                "core that other work leaves free; torch's own choice on CUDA)",
        "min": -1, "resume": True})
    log_every: int = field(default=10, metadata={
        "help": "steps between loss log rows", "min": 1, "resume": True})
    sample_every: int = field(default=200, metadata={
        "help": "steps between sample grids", "min": 1, "resume": True})
    checkpoint_every: int = field(default=500, metadata={"help": "steps between checkpoints",
                                                         "min": 1, "resume": True})
    keep_last: int = field(default=3, metadata={
        "help": "recent checkpoints to keep", "min": 0, "resume": True})
    history_every: int = field(default=5000, metadata={
        "help": "also keep every checkpoint at a multiple of this step (0: none)", "min": 0, "resume": True})

    DEFAULT_STEPS: typing.ClassVar[int] = 1000


def resumable(name: str) -> bool:
    """Whether a training option may change when a run is resumed (its field's ``resume``
    metadata): how long and where it trains, and how often it writes; not what it learns."""
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    return name in fields and bool(fields[name].metadata.get("resume"))


# -- dataclass <-> flags ------------------------------------------------------------------
def _base_type(tp: Any) -> Any:
    """``int | None`` -> int, ``Literal["a", "b"]`` -> the literal's args."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        return tp
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if args and (origin is typing.Union or str(origin) == "<class 'types.UnionType'>"):
        return _base_type(args[0])
    return tp


def field_types(config_cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(config_cls)
    return {f.name: _base_type(hints[f.name]) for f in dataclasses.fields(config_cls)}


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def _range_type(tp: Any, metadata: Any) -> Any:
    """``int``/``float`` with ``min``/``max`` in the field's metadata -> a click type that
    enforces them, with :func:`number_problem`'s words; floats are always held finite."""
    import click

    if tp not in (int, float):
        return str
    if tp is int and metadata.get("min") is None and metadata.get("max") is None:
        return int

    class Bounded(click.ParamType):
        name = tp.__name__

        def convert(self, value: Any, param: Any, ctx: Any) -> Any:
            number = value if type(value) is tp else click.types.convert_type(tp).convert(
                value, param, ctx)
            problem = number_problem(number, metadata)
            if problem:
                self.fail(problem, param, ctx)
            return number

        def __repr__(self) -> str:  # equal for equal bounds, as click's own types
            return f"Bounded({tp.__name__}, {metadata.get('min')}, {metadata.get('max')})"

    return Bounded()


def _bounds_text(metadata: Any) -> str:
    lo, hi = metadata.get("min"), metadata.get("max")
    low = f"more than {lo}" if metadata.get("min_open") else f"at least {lo}"
    high = f"less than {hi}" if metadata.get("max_open") else f"at most {hi}"
    if lo is not None and hi is not None:
        if metadata.get("min_open") or metadata.get("max_open"):
            return f"{low} and {high}"
        return f"between {lo} and {hi}"
    return low if lo is not None else high


def number_problem(value: Any, metadata: Any) -> str | None:
    """What is wrong with a number against a field's ``min``/``max`` metadata (None:
    nothing). ``min_open``/``max_open`` exclude the bound itself; NaN and infinities never
    fit (a NaN compares false with every bound, so it would slip through the comparisons)."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"must be a finite number, not {value}"
    lo, hi = metadata.get("min"), metadata.get("max")
    too_low = lo is not None and (value <= lo if metadata.get("min_open") else value < lo)
    too_high = hi is not None and (value >= hi if metadata.get("max_open") else value > hi)
    if too_low or too_high:
        return f"must be {_bounds_text(metadata)}, not {value}"
    return None


def check_ranges(config: Any) -> None:
    """Hold every set field of ``config`` to its metadata: numbers to ``min``/``max``
    (finite), strings to ``choices``; the same rules click enforces for the flags, for
    ``config.json`` and callers of the library."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if value is None or isinstance(value, bool):
            continue
        problem = None
        if isinstance(value, int | float):
            problem = number_problem(value, f.metadata)
        elif f.metadata.get("choices") and value not in f.metadata["choices"]:
            problem = f"must be one of {', '.join(f.metadata['choices'])}, not {value!r:.40}"
        if problem:
            raise GantoolError(f"{flag_name(f.name)} {problem}")


def click_options(config_cls: type, skip: Collection[str] = frozenset(),
                  only: Collection[str] | None = None) -> list:
    """One click option per dataclass field, default and help taken from the field.

    Field metadata: ``help``, ``choices``, ``required``, ``min``/``max`` (a click range),
    ``metavar``. ``only`` keeps just the named fields.
    """
    import click

    options = []
    types = field_types(config_cls)
    for f in dataclasses.fields(config_cls):
        if f.name in skip or not f.init or (only is not None and f.name not in only):
            continue
        tp = types[f.name]
        default = f.default if f.default is not dataclasses.MISSING else None
        if f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        help_text = f.metadata.get("help", "")
        choices = f.metadata.get("choices")
        if typing.get_origin(tp) is Literal:
            choices = [str(a) for a in typing.get_args(tp)]
            tp = str
        if tp is bool:
            flag = flag_name(f.name)
            neg = "--no-" + f.name.replace("_", "-")
            options.append(click.Option([f"{flag}/{neg}"], default=default, help=help_text,
                                        show_default=True))
            continue
        click_type = click.Choice(choices) if choices else _range_type(tp, f.metadata)
        names = [flag_name(f.name), f.name]
        if f.metadata.get("required"):
            # Checked by the command (not by click), which may not need it (--resume).
            options.append(click.Option(names, type=click_type, metavar=f.metadata.get("metavar"),
                                        help=help_text + " [required]"))
            continue
        options.append(click.Option(names, type=click_type, default=default, help=help_text,
                                    metavar=f.metadata.get("metavar"),
                                    show_default=default is not None))
    return options


def config_from_dict(config_cls: type, values: dict[str, Any], strict: bool = True) -> Any:
    """Build a config dataclass, checking field names and coercing numbers."""
    names = {f.name for f in dataclasses.fields(config_cls)}
    unknown = set(values) - names
    if unknown and strict:
        raise GantoolError(
            f"unknown option(s) for {config_cls.__name__}: {', '.join(sorted(unknown))}"
        )
    types = field_types(config_cls)
    clean = {}
    for key, value in values.items():
        if key not in names:
            continue
        tp = types[key]
        if value is not None and tp in (int, float) and not isinstance(value, bool):
            value = tp(value)
        clean[key] = value
    return config_cls(**clean)


def to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)
