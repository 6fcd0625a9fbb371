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

import dataclasses
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

import translator
from translator import onnx_metadata as meta
from translator.errors import GantoolError
from translator.safe_write import temporary_sibling
from translator.specs import ExportRequest

# Options, generator choice and file names are read in onnx_request (torch-free);
# DEFAULT_OPSET and output_paths are still found here too.
from .onnx_request import DEFAULT_OPSET as DEFAULT_OPSET
from .onnx_request import OnnxOptions, output_paths, select_generators, trained_only
from .quiet import captured_output

#: The lowest opset torch's dynamo exporter implements; lower ones are attempted through
#: ONNX version conversion, which fails for some ops (CycleGAN's Pad cannot go below 18).
NATIVE_MIN_OPSET = 18
#: Max absolute difference allowed between onnxruntime and PyTorch outputs (outputs are
#: in [-1, 1]). fp16 weights lose ~3 decimal digits, hence the looser bound.
FP32_TOLERANCE = 1e-4
FP16_TOLERANCE = 2e-2


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


# -- export --------------------------------------------------------------------------------
def check_opset(opset: int) -> None:
    """Reject opsets that no installed component can write, before any slow work."""
    newest = onnx.defs.onnx_opset_version()
    if not 7 <= opset <= newest:
        raise GantoolError(
            f"--opset {opset} cannot be written: the installed onnx {onnx.__version__} knows "
            f"opsets up to {newest}, and torch {torch.__version__} writes {NATIVE_MIN_OPSET} and "
            f"above (lower ones by conversion, which not every model survives)"
        )


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


def build_metadata(gen: Any, rc: Any, step: int, direction: str | None,
                   opts: OnnxOptions) -> meta.ModelMetadata:
    """What the file says about itself. The typed fields are the exporter's: a plugin's
    ``metadata`` adds keys of its own but cannot override those (:data:`meta.CORE_KEYS`)."""
    plugin = {k: v for k, v in meta.prefixed(gen.metadata).items() if k not in meta.CORE_KEYS}
    stated = meta.ModelMetadata(
        kind=gen.kind, model=rc.spec.name, input_size=opts.static_size or int(rc.train.size),
        input_range=(-1.0, 1.0), channel_order="RGB", version=translator.__version__,
        precision="int8" if opts.int8 else "fp16" if opts.fp16 else "fp32",
        checkpoint_step=str(step), extra=plugin,
    )
    if gen.kind != "translation":
        return dataclasses.replace(stated, latent_dim=gen.latent_dim)
    names = rc.domain_names
    src, dst = ("a", "b") if direction == "a2b" else ("b", "a")
    return dataclasses.replace(stated, direction=direction or "", domain_from=names.get(src, src),
                               domain_to=names.get(dst, dst), size_multiple=gen.size_multiple)


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
    return [_export_generator(name, gen, rc, step, paths[name], opts) for name, gen in gens.items()]


def _export_generator(name: str, gen: Any, rc: Any, step: int, path: Path,
                      opts: OnnxOptions) -> ExportedFile:
    """Export, check and verify one generator (and quantize it with ``--int8``), in memory."""
    start = time.perf_counter()
    train_size = int(rc.train.size)
    label = f"{rc.spec.name} {name}"
    _check_static_size(opts.static_size, gen.size_multiple, rc.spec.name)
    gen.check_size_multiple(opts.static_size or train_size, f"{label} generator")
    io_names = ("latent", "image") if gen.kind == "generation" else ("image", "translated")
    example = trace_input(gen, train_size, opts.static_size)
    proto, _plan = export_module(gen, example, opts.opset, opts.static_size, *io_names)
    if opts.fp16:
        proto = to_fp16(proto)
    direction = name if gen.kind == "translation" else None
    stated = build_metadata(gen, rc, step, direction, opts)
    # Metadata goes on last, after any fp16 conversion, so no conversion can drop it.
    meta.write_props(proto, stated.to_props())
    _check_model(proto, f"the exported {name} model")
    error = _verify(proto, gen, train_size, opts, label) if opts.verify else None
    score = None
    if opts.int8:
        side = _round_up(train_size, gen.size_multiple)
        proto, score, stated = _quantize(proto, rc, direction, side, opts, label, stated)
    return ExportedFile(path, name, direction, stated.to_props(), error, score,
                        time.perf_counter() - start, model=proto)


def _check_static_size(static_size: int | None, multiple: int, model: str) -> None:
    if static_size is None or not static_size % multiple:
        return
    lower, upper = static_size - static_size % multiple, static_size - static_size % multiple + multiple
    hint = f"{lower} or {upper}" if lower > 0 else str(upper)
    raise GantoolError(f"--static-size {static_size}: {model}'s generator needs height and "
                       f"width divisible by {multiple} (e.g. {hint})")


def _check_model(proto: onnx.ModelProto, what: str) -> None:
    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as exc:
        raise GantoolError(f"{what} fails onnx.checker: {_first_line(exc)[:300]}") from None


def _verify(proto: onnx.ModelProto, gen: Any, train_size: int, opts: OnnxOptions, label: str) -> float:
    """The largest difference from PyTorch; :class:`GantoolError` above the tolerance."""
    tolerance = FP16_TOLERANCE if opts.fp16 else FP32_TOLERANCE
    error, shape = max_error(proto, gen.module, verification_inputs(gen, train_size, opts.static_size))
    if not error <= tolerance:
        raise GantoolError(
            f"{label}: onnxruntime differs from PyTorch by {error:.3g} "
            f"(max abs, input {list(shape)}), more than the {tolerance:g} allowed for "
            f"{'fp16' if opts.fp16 else 'fp32'}; nothing written (--no-verify skips this check)"
        )
    return error


def _quantize(proto: onnx.ModelProto, rc: Any, direction: str | None, size: int, opts: OnnxOptions,
              label: str, stated: meta.ModelMetadata) -> tuple[onnx.ModelProto, float, meta.ModelMetadata]:
    """The int8 version of a verified fp32 model, with its metadata (``stated`` plus the
    int8 keys); :class:`GantoolError` when it misses the quality bar."""
    from .onnx_int8 import DEFAULT_MIN_PSNR, run_images, to_int8

    min_psnr = DEFAULT_MIN_PSNR if opts.min_psnr is None else opts.min_psnr
    result = to_int8(proto, run_images(rc, direction, size), min_psnr, label)
    stated = dataclasses.replace(stated, extra={**stated.extra, **result.metadata})
    meta.write_props(result.model, stated.to_props())
    _check_model(result.model, f"the int8 {label} model")
    return result.model, result.psnr, stated


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
