"""Reading a ``gantool export onnx`` request: its options, which generators it asks for,
and where their files go. Checked before any slow work; imports neither torch nor onnx."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from translator.errors import GantoolError
from translator.safe_write import safe_component

Log = Callable[[str], None]

DEFAULT_OPSET = 18  # the widest runtime compatibility among opsets written natively
DIRECTIONS = ("a2b", "b2a")


@dataclass(frozen=True)
class OnnxOptions:
    """Format-specific settings, read from ``ExportRequest.options``."""

    opset: int = DEFAULT_OPSET
    fp16: bool = False
    #: Fix height and width to this many pixels (batch stays dynamic).
    static_size: int | None = None
    verify: bool = True
    #: Static int8 quantization calibrated on the run's training images.
    int8: bool = False
    #: int8 only: least PSNR (dB) of int8 against fp32 output on held-out images.
    min_psnr: float | None = None
    #: Called with one line per written file; ``None`` for silence.
    log: Log | None = print

    @classmethod
    def from_request(cls, options: dict[str, Any]) -> OnnxOptions:
        known = {"opset", "fp16", "static_size", "verify", "int8", "min_psnr", "log"}
        unknown = sorted(set(options) - known)
        if unknown:
            raise GantoolError(
                f"unknown onnx export option(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        values = {k: v for k, v in options.items() if v is not None or k == "log"}
        try:
            opts = cls(**values)
            opts = cls(
                opset=int(opts.opset), fp16=_as_bool(opts.fp16),
                static_size=None if opts.static_size is None else int(opts.static_size),
                verify=_as_bool(opts.verify), int8=_as_bool(opts.int8),
                min_psnr=None if opts.min_psnr is None else float(opts.min_psnr), log=opts.log,
            )
        except (TypeError, ValueError) as exc:
            raise GantoolError(f"bad onnx export option: {exc}") from None
        if opts.static_size is not None and opts.static_size < 1:
            raise GantoolError(f"--static-size must be a positive number of pixels, not {opts.static_size}")
        if opts.int8 and opts.fp16:
            raise GantoolError("choose one of --int8 and --fp16")
        if opts.min_psnr is not None and not opts.int8:
            raise GantoolError("--min-psnr applies to --int8 exports")
        return opts


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"'{value}' is not a boolean")
    return bool(value)



def output_paths(output: Path | None, run_dir: Path, model: str, names: list[str],
                 single_name: bool) -> dict[str, Path]:
    """Where each generator's file goes.

    ``names`` are directions (translation) or generator names. Rules for ``output``:
    ``None``: ``RUN/export/<model>-<direction>.onnx`` (``<model>.onnx`` when
    ``single_name``); a path containing ``{direction}`` (and/or ``{model}``): a name
    pattern; an existing folder or a path without the ``.onnx`` suffix: the folder for the
    default names; otherwise a file name, with ``-<direction>`` inserted before ``.onnx``
    when several files are written.
    """
    # Model and generator names come from plugins and run configs: one component each.
    model = safe_component(model, fallback="model")
    safe = {n: safe_component(n, fallback="generator") for n in names}

    def default_name(name: str) -> str:
        return f"{model}.onnx" if single_name else f"{model}-{safe[name]}.onnx"

    if output is None:
        paths = {n: run_dir / "export" / default_name(n) for n in names}
    elif "{" in str(output):
        try:
            paths = {n: Path(str(output).format(direction=safe[n], model=model, name=safe[n]))
                     for n in names}
        except (KeyError, IndexError, ValueError) as exc:
            raise GantoolError(
                f"-o {output}: a name pattern may use {{direction}} and {{model}} only ({exc})"
            ) from None
    elif output.is_dir() or str(output).endswith(os.sep) or output.suffix.lower() != ".onnx":
        paths = {n: output / default_name(n) for n in names}
    elif len(names) == 1:
        paths = {names[0]: output}
    else:
        paths = {n: output.with_name(f"{output.stem}-{safe[n]}{output.suffix}") for n in names}
    if len(set(paths.values())) != len(paths):
        raise GantoolError(f"-o {output} gives the same file for {', '.join(names)}; use {{direction}}")
    for path in paths.values():
        if path.is_dir():
            raise GantoolError(f"{path} is a folder; cannot write the model there")
    return paths



def select_generators(generators: dict[str, Any], direction: str | None, model: str) -> dict[str, Any]:
    """Generators to export, keyed by direction (translation) or name (generation)."""
    if not generators:
        raise GantoolError(f"model {model} has no exportable generator")
    kinds = {g.kind for g in generators.values()}
    if kinds == {"generation"}:
        if direction not in (None, "both"):
            raise GantoolError(f"--direction {direction}: {model} is a generation model with no "
                               "direction; leave --direction out")
        return dict(generators)
    if direction in (None, "both"):
        wanted = [d for d in DIRECTIONS if d in generators]
    elif direction in DIRECTIONS:
        wanted = [direction]
    else:
        raise GantoolError(f"--direction {direction}: choose a2b, b2a or both")
    missing = [d for d in wanted if d not in generators]
    if missing or not wanted:
        raise GantoolError(f"model {model} has no '{(missing or ['a2b'])[0]}' generator; "
                           f"it has: {', '.join(generators)}")
    return {d: generators[d] for d in wanted}


def trained_only(gens: dict[str, Any], untrained: dict[str, str], direction: str | None,
                 log: Log | None) -> dict[str, Any]:
    """``gens`` without the ones the run never trained: refused when asked for by name,
    else skipped with a line saying so (an untrained generator writes noise)."""
    if direction in untrained:
        raise GantoolError(f"--direction {direction}: this run's {direction} generator was "
                           f"never trained ({untrained[direction]}); export the others")
    kept = {n: g for n, g in gens.items() if n not in untrained}
    if not kept:
        raise GantoolError("this run's generators were never trained: "
                           + "; ".join(f"{n}: {why}" for n, why in untrained.items()))
    for name in gens.keys() - kept.keys():
        if log is not None:
            log(f"Skipped {name}: never trained ({untrained[name]})")
    return kept

