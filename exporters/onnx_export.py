"""Exporting a run's generators to self-contained, self-describing, verified ONNX files.

The library side of ``gantool export onnx``; :mod:`translator.exporters.onnx` registers it.
Steps per generator: ``torch.onnx.export`` (the dynamo exporter, which needs onnxscript)
with dynamic batch/height/width, optional fp16 weights, ``gantool.*`` metadata,
``onnx.checker`` (full check), then onnxruntime CPU against PyTorch on random inputs.
Files are written only when every requested generator passed, each under a temporary
name in the destination folder and renamed into place, so a failure leaves nothing behind.

This module imports torch and onnx; import it only when exporting.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

import translator
from translator import onnx_metadata as meta
from translator.errors import GantoolError
from translator.safe_write import safe_component, temporary_sibling
from translator.specs import ExportRequest

Log = Callable[[str], None]

#: The lowest opset torch's dynamo exporter implements; lower ones are attempted through
#: ONNX version conversion, which fails for some ops (CycleGAN's Pad cannot go below 18).
NATIVE_MIN_OPSET = 18
DEFAULT_OPSET = 18  # the widest runtime compatibility among opsets written natively
#: Max absolute difference allowed between onnxruntime and PyTorch outputs (outputs are
#: in [-1, 1]). fp16 weights lose ~3 decimal digits, hence the looser bound.
FP32_TOLERANCE = 1e-4
FP16_TOLERANCE = 2e-2
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


@dataclass
class ExportedFile:
    """One written (or, before writing, prepared) ONNX file."""

    path: Path
    generator: str
    direction: str | None
    metadata: dict[str, str]
    #: Largest |onnxruntime - PyTorch| over the verification inputs; None with verify off.
    max_error: float | None = None
    #: int8 only: PSNR (dB) of the int8 output against fp32 on held-out images.
    psnr: float | None = None
    seconds: float = 0.0
    size_bytes: int = 0
    model: Any = field(default=None, repr=False)  # the onnx.ModelProto until written


# -- options and paths ---------------------------------------------------------------------
def check_opset(opset: int) -> None:
    """Reject opsets that no installed component can write, before any slow work."""
    newest = onnx.defs.onnx_opset_version()
    if not 7 <= opset <= newest:
        raise GantoolError(
            f"--opset {opset} cannot be written: the installed onnx {onnx.__version__} knows "
            f"opsets up to {newest}, and torch {torch.__version__} writes {NATIVE_MIN_OPSET} and "
            f"above (lower ones by conversion, which not every model survives)"
        )


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


# -- quiet ---------------------------------------------------------------------------------
@contextlib.contextmanager
def captured_output() -> Iterator[io.StringIO]:
    """Silence everything the exporter prints: Python prints, warnings, log records (switched
    off for the duration) and C-level writes to file descriptors 1 and 2 (onnx's version
    converter and log handlers bound to the original streams). Printed text is collected
    in the yielded buffer."""
    buf = io.StringIO()
    sys.stdout.flush()
    sys.stderr.flush()
    saved: list[tuple[int, int]] = []
    with tempfile.TemporaryFile(mode="w+b") as sink:
        try:
            for fd in (1, 2):
                try:
                    saved.append((fd, os.dup(fd)))
                    os.dup2(sink.fileno(), fd)
                except OSError:  # no such descriptor (embedded interpreters): Python-level only
                    pass
            # Log handlers may hold a stream captured before this point (not fd 1/2), so
            # records are switched off too, for the duration only.
            previous_disable = logging.root.manager.disable
            logging.disable(logging.CRITICAL)
            try:
                with warnings.catch_warnings(), contextlib.redirect_stdout(buf), \
                        contextlib.redirect_stderr(buf):
                    warnings.simplefilter("ignore")
                    yield buf
            finally:
                logging.disable(previous_disable)
        finally:
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            for fd, copy in saved:
                os.dup2(copy, fd)
                os.close(copy)
            sink.seek(0)
            buf.write(sink.read().decode("utf-8", "replace"))


# -- export --------------------------------------------------------------------------------
def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def trace_input(gen: Any, train_size: int, static_size: int | None) -> torch.Tensor:
    """The example input the exporter traces with.

    Batch 2 and sides of at least two multiples: torch.export specialises dimensions whose
    example value is 0 or 1, which would make them static. Sides differ so that height and
    width are not assumed equal.
    """
    if gen.kind == "generation":
        size: int | tuple[int, int] = 0
    elif static_size is not None:
        size = static_size
    else:
        m = gen.size_multiple
        h = max(_round_up(train_size, m), 2 * m)
        size = (h, h + m)
    # Seeded for reproducible exports, without touching the caller's global RNG state.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return gen.example_input(2, size)


def shape_plans(gen: Any, static_size: int | None) -> list[tuple[str, Any]]:
    """Dynamic-shape specifications to try, most dynamic first."""
    from torch.export import Dim

    batch = Dim("batch", min=1)
    if gen.kind == "generation":
        return [("dynamic batch", ({0: batch},)), ("static", None)]
    if static_size is not None:
        return [("dynamic batch", ({0: batch},)), ("static", None)]
    m = gen.size_multiple
    plans: list[tuple[str, Any]] = []
    if m > 1:
        # Height and width as multiples of size_multiple: the graph states the constraint.
        plans.append((f"dynamic batch, height and width (multiples of {m})",
                      ({0: batch, 2: m * Dim("h", min=1), 3: m * Dim("w", min=1)},)))
    plans.append(("dynamic batch, height and width",
                  ({0: batch, 2: Dim("height", min=1), 3: Dim("width", min=1)},)))
    plans.append(("dynamic batch", ({0: batch},)))
    plans.append(("static", None))
    return plans


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}".strip().rstrip(":")


def _conversion_reason(model: onnx.ModelProto, opset: int) -> str:
    """Why onnx's version converter cannot take ``model`` to ``opset``, e.g. 'No Adapter To
    Version $17 for Pad' (the exporter only logs it, and its logs are silenced)."""
    try:
        with captured_output():
            onnx.version_converter.convert_version(model, opset)
    except Exception as exc:
        m = re.search(r"(No Adapter (?:To|From) Version \$\d+ for \w+)", str(exc))
        return f": {m.group(1)}" if m else ""
    return ""


def export_module(gen: Any, example: torch.Tensor, opset: int, static_size: int | None,
                  input_name: str, output_name: str) -> tuple[onnx.ModelProto, str]:
    """``torch.onnx.export`` (dynamo) of one generator; returns the model and which shape
    plan worked. Raises :class:`GantoolError` when no plan exports or the opset is off."""
    module = gen.module.eval().float().cpu()
    errors: list[str] = []
    for description, dynamic_shapes in shape_plans(gen, static_size):
        with captured_output():
            try:
                program = torch.onnx.export(
                    module, (example,), dynamo=True, external_data=False, opset_version=opset,
                    input_names=[input_name], output_names=[output_name], verbose=False,
                    dynamic_shapes=dynamic_shapes, report=False,
                )
                assert program is not None, "the dynamo exporter always returns a program"
                model = program.model_proto
            except Exception as exc:  # the exporter raises many types; try the next plan
                reason = _first_line(exc)
                if errors and errors[-1].endswith(": " + reason):
                    break  # the same failure again: not about shapes, so no plan will do
                errors.append(f"{description}: {reason}")
                continue
        written = {o.domain: o.version for o in model.opset_import}.get("", None)
        if written != opset:
            raise GantoolError(
                f"--opset {opset}: torch {torch.__version__} cannot write this model at opset "
                f"{opset} (it stays at {written}; conversion failed"
                f"{_conversion_reason(model, opset)}); use --opset {NATIVE_MIN_OPSET} or higher"
            )
        return model, description
    raise GantoolError("torch.onnx.export failed: " + "; ".join(errors[:2]))


def to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """fp16 weights and compute, float32 inputs and outputs (``keep_io_types``)."""
    from onnxconverter_common import float16

    with captured_output():
        return float16.convert_float_to_float16(model, keep_io_types=True)


def verification_inputs(gen: Any, train_size: int, static_size: int | None) -> list[torch.Tensor]:
    """Random inputs at two shapes: for translation two sizes (one non-square) unless the
    size is static, then two batch sizes; for generation two batch sizes."""
    g = torch.Generator().manual_seed(1234)
    if gen.kind == "generation":
        return [torch.randn(b, gen.latent_dim or 1, generator=g) for b in (1, 3)]
    if static_size is not None:
        shapes = [(1, static_size, static_size), (2, static_size, static_size)]
    else:
        m = gen.size_multiple
        side = _round_up(max(train_size, m), m)
        shapes = [(1, side, side), (2, side, side + 2 * m)]
    return [torch.rand(n, 3, h, w, generator=g) * 2 - 1 for n, h, w in shapes]


def max_error(model: onnx.ModelProto, module: torch.nn.Module,
              inputs: list[torch.Tensor]) -> tuple[float, tuple[int, ...]]:
    """Largest |onnxruntime CPU - PyTorch| over ``inputs``, and the input shape where it
    occurred. onnxruntime failing to load or run the model is a :class:`GantoolError`."""
    import onnxruntime as ort

    ort.set_default_logger_severity(3)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(model.SerializeToString(), sess_options=options,
                                       providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise GantoolError(f"onnxruntime {ort.__version__} cannot load the exported model: "
                           f"{_first_line(exc)[:300]}") from None
    name = session.get_inputs()[0].name
    worst = -1.0
    where: tuple[int, ...] = ()
    for x in inputs:
        with torch.no_grad():
            expected = module(x).float().numpy()
        try:
            got = session.run(None, {name: x.numpy()})[0]
        except Exception as exc:
            raise GantoolError(f"onnxruntime failed on input {list(x.shape)}: "
                               f"{_first_line(exc)[:300]}") from None
        if got.shape != expected.shape:
            raise GantoolError(f"onnxruntime output {list(got.shape)} differs from PyTorch's "
                               f"{list(expected.shape)} on input {list(x.shape)}")
        err = float(np.max(np.abs(got.astype(np.float64) - expected)))
        if not np.isfinite(err):
            err = float("inf")
        if err > worst:
            worst, where = err, tuple(x.shape)
    return worst, where


def build_metadata(gen: Any, rc: Any, step: int, direction: str | None, opts: OnnxOptions) -> dict[str, str]:
    """The file's ``gantool.*`` entries; core keys win over a plugin's metadata."""
    entries = meta.prefixed(gen.metadata)
    train_size = int(rc.train.size)
    core = {
        meta.KIND: gen.kind,
        meta.MODEL: rc.spec.name,
        meta.INPUT_SIZE: str(opts.static_size or train_size),
        meta.INPUT_RANGE: "-1,1",
        meta.CHANNEL_ORDER: "RGB",
        meta.VERSION: translator.__version__,
        meta.PRECISION: "int8" if opts.int8 else "fp16" if opts.fp16 else "fp32",
        meta.CHECKPOINT_STEP: str(step),
    }
    if gen.kind == "translation":
        names = rc.domain_names
        src, dst = ("a", "b") if direction == "a2b" else ("b", "a")
        core.update({
            meta.DIRECTION: direction or "",
            meta.DOMAIN_FROM: names.get(src, src),
            meta.DOMAIN_TO: names.get(dst, dst),
            meta.SIZE_MULTIPLE: str(gen.size_multiple),
        })
    else:
        for key in (meta.DIRECTION, meta.DOMAIN_FROM, meta.DOMAIN_TO, meta.SIZE_MULTIPLE):
            entries.pop(key, None)
        core[meta.LATENT_DIM] = str(gen.latent_dim)
    entries.update(core)
    return entries


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


def prepare(request: ExportRequest, opts: OnnxOptions) -> list[ExportedFile]:
    """Export, check and verify every requested generator, in memory."""
    from translator.training.runs import load_model

    check_opset(opts.opset)
    model, rc, step = load_model(Path(request.run_dir), request.checkpoint)
    gens = select_generators(model.generators(), request.direction, rc.spec.name)
    gens = trained_only(gens, rc.untrained(step), request.direction, opts.log)
    translation = next(iter(gens.values())).kind == "translation"
    if not translation and opts.int8:
        raise GantoolError("--int8 applies to translation models (it is calibrated on images)")
    if not translation and opts.static_size is not None:
        raise GantoolError("--static-size applies to translation models; generation models take "
                           "a latent vector")
    paths = output_paths(request.output, Path(request.run_dir), rc.spec.name, list(gens),
                         single_name=not translation and len(gens) == 1)
    train_size = int(rc.train.size)
    files: list[ExportedFile] = []
    for name, gen in gens.items():
        start = time.perf_counter()
        if opts.static_size is not None and opts.static_size % gen.size_multiple:
            m, s = gen.size_multiple, opts.static_size
            lower, upper = s - s % m, s - s % m + m
            hint = f"{lower} or {upper}" if lower > 0 else str(upper)
            raise GantoolError(f"--static-size {s}: {rc.spec.name}'s generator needs height and "
                               f"width divisible by {m} (e.g. {hint})")
        gen.check_size_multiple(opts.static_size or train_size, f"{rc.spec.name} {name} generator")
        io_names = ("latent", "image") if gen.kind == "generation" else ("image", "translated")
        example = trace_input(gen, train_size, opts.static_size)
        proto, _plan = export_module(gen, example, opts.opset, opts.static_size, *io_names)
        if opts.fp16:
            proto = to_fp16(proto)
        direction = name if gen.kind == "translation" else None
        entries = build_metadata(gen, rc, step, direction, opts)
        # Metadata goes on last, after any fp16 conversion, so no conversion can drop it.
        meta.write_props(proto, entries)
        try:
            onnx.checker.check_model(proto, full_check=True)
        except Exception as exc:
            raise GantoolError(f"the exported {name} model fails onnx.checker: {_first_line(exc)[:300]}") \
                from None
        error = None
        if opts.verify:
            tolerance = FP16_TOLERANCE if opts.fp16 else FP32_TOLERANCE
            error, shape = max_error(proto, gen.module,
                                     verification_inputs(gen, train_size, opts.static_size))
            if not error <= tolerance:
                raise GantoolError(
                    f"{rc.spec.name} {name}: onnxruntime differs from PyTorch by {error:.3g} "
                    f"(max abs, input {list(shape)}), more than the {tolerance:g} allowed for "
                    f"{'fp16' if opts.fp16 else 'fp32'}; nothing written (--no-verify skips this check)"
                )
        score = None
        if opts.int8:
            side = _round_up(train_size, gen.size_multiple)
            proto, score = _quantize(proto, rc, direction, side, opts, f"{rc.spec.name} {name}",
                                     entries)
        files.append(ExportedFile(paths[name], name, direction, entries, error, score,
                                  time.perf_counter() - start, model=proto))
    return files


def _quantize(proto: onnx.ModelProto, rc: Any, direction: str | None, size: int,
              opts: OnnxOptions, label: str, entries: dict[str, str]) -> tuple[onnx.ModelProto, float]:
    """The int8 version of a verified fp32 model, with its metadata (``entries`` gains the
    int8 keys); :class:`GantoolError` when it misses the quality bar."""
    from .onnx_int8 import DEFAULT_MIN_PSNR, run_images, to_int8

    min_psnr = DEFAULT_MIN_PSNR if opts.min_psnr is None else opts.min_psnr
    result = to_int8(proto, run_images(rc, direction, size), min_psnr, label)
    entries.update(result.metadata)
    meta.write_props(result.model, entries)
    try:
        onnx.checker.check_model(result.model, full_check=True)
    except Exception as exc:
        raise GantoolError(f"the int8 {label} model fails onnx.checker: {_first_line(exc)[:300]}") \
            from None
    return result.model, result.psnr


def write_files(files: list[ExportedFile]) -> None:
    """Write every file under a temporary name in its folder, then rename them all: a
    failure before the renames leaves no file, partial or whole, behind."""
    temps: list[Path] = []
    try:
        for f in files:
            f.path.parent.mkdir(parents=True, exist_ok=True)
            # Hidden, unique name in the destination folder (same file system, so the
            # rename is atomic); created normally so the file gets the usual permissions.
            tmp = temporary_sibling(f.path)
            temps.append(tmp)
            onnx.save_model(f.model, str(tmp))  # no external data: one file
            f.size_bytes = tmp.stat().st_size
        for f, tmp in zip(files, temps, strict=True):
            os.replace(tmp, f.path)
    except OSError as exc:
        raise GantoolError(f"cannot write {exc.filename or 'the model'}: {exc.strerror or exc}") from None
    finally:
        for tmp in temps:
            tmp.unlink(missing_ok=True)
    for f in files:
        f.model = None  # release the in-memory copy


def export_run(request: ExportRequest) -> list[ExportedFile]:
    """Export a run's generators to ONNX as ``request`` says; see :class:`OnnxOptions` for
    ``request.options``. Logs one line per written file through ``options["log"]``."""
    opts = OnnxOptions.from_request(dict(request.options))
    files = prepare(request, opts)
    write_files(files)
    if opts.log is not None:
        for f in files:
            check = "not verified" if f.max_error is None else f"max error {f.max_error:.2g}"
            if f.psnr is not None:
                check += f", int8 {f.psnr:.1f} dB PSNR against fp32"
            opts.log(f"Wrote {f.path} ({f.size_bytes / 1e6:.2f} MB, {check}, {f.seconds:.1f} s)")
    return files
