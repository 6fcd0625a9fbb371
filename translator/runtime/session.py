"""Opening an ONNX model: provider choice, metadata, and clear errors for bad files.

onnxruntime is imported inside functions so that importing this module stays cheap.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from translator import onnx_metadata as onnx_meta
from translator.errors import GantoolError

from . import providers

Log = Callable[[str], None]

_CPU = providers.CPU

DEFAULT_SIZE = 256
DEFAULT_RANGE = (-1.0, 1.0)


def stderr_log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class ModelInfo:
    """What the runtime needs to know to feed a model, from its metadata or from flags."""

    path: Path
    kind: Literal["translation", "generation"] = "translation"
    model: str = ""
    direction: str = ""
    domain_from: str = ""
    domain_to: str = ""
    #: Processing size: the short side of a frame is resized to this (training resolution).
    input_size: int = DEFAULT_SIZE
    #: Height and width given to the model are rounded to a multiple of this.
    size_multiple: int = 1
    input_range: tuple[float, float] = DEFAULT_RANGE
    channel_order: str = "RGB"
    latent_dim: int | None = None
    version: str = ""
    input_name: str = "input"
    output_name: str = "output"
    #: The input tensor's shape as onnxruntime reports it (ints for fixed dims, else names).
    input_shape: tuple[Any, ...] = ()
    #: True when the file carries gantool metadata.
    from_metadata: bool = False
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def fixed_hw(self) -> tuple[int, int] | None:
        """(height, width) when the model only accepts one image size."""
        if len(self.input_shape) == 4:
            h, w = self.input_shape[2], self.input_shape[3]
            if isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0:
                return h, w
        return None

    @property
    def max_batch(self) -> int | None:
        """1 when the model's batch dimension is fixed to 1 (None: any batch size)."""
        if self.input_shape and isinstance(self.input_shape[0], int) and self.input_shape[0] > 0:
            return self.input_shape[0]
        return None

    @property
    def processing_size(self) -> int:
        """The short side the model really runs at: its fixed size, or ``input_size``
        rounded to ``size_multiple`` (what :func:`processing_shape` does to a square)."""
        fixed = self.fixed_hw
        if fixed is not None:
            return min(fixed)
        mult = self.size_multiple
        return max(mult, int(round(self.input_size / mult)) * mult)

    def size_note(self) -> str | None:
        """Why the processing size differs from the one asked for, or None."""
        used = self.processing_size
        if used == self.input_size:
            return None
        if self.fixed_hw is not None:
            h, w = self.fixed_hw
            return f"{self.input_size}px asked, but {self.path.name} only takes {h}x{w}: running at {used}px"
        return (f"{self.input_size}px is not a multiple of {self.size_multiple}, which "
                f"{self.path.name} needs: running at {used}px")

    def describe(self) -> str:
        if self.kind == "generation":
            return f"{self.model or 'generator'} (latent {self.latent_dim})"
        arrow = f" {self.domain_from}->{self.domain_to}" if self.domain_from else ""
        return f"{self.model or 'model'}{arrow} at {self.processing_size}px"


def parse_range(text: str) -> tuple[float, float]:
    """``"-1,1"`` -> ``(-1.0, 1.0)``; raises :class:`GantoolError` on anything else."""
    return onnx_meta.parse_input_range(text, "--input-range", "input range")


def check_model_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.exists():
        raise GantoolError(f"model file not found: {path}")
    if path.is_dir():
        raise GantoolError(f"model path is a folder, expected an .onnx file: {path}")
    if path.stat().st_size == 0:
        raise GantoolError(f"model file is empty: {path}")
    return path


def model_info(
    session: Any,
    path: Path,
    size: int | None = None,
    input_range: tuple[float, float] | None = None,
    log: Log = stderr_log,
) -> ModelInfo:
    """Read gantool metadata from an open session; flags fill in what metadata lacks."""
    meta = dict(session.get_modelmeta().custom_metadata_map or {})
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1 or not outputs:
        raise GantoolError(
            f"{path.name}: expected a model with one input and an output, "
            f"found {len(inputs)} input(s) and {len(outputs)} output(s)"
        )
    stated = onnx_meta.ModelMetadata.from_props(meta, path.name)
    shape = tuple(inputs[0].shape)
    kind = stated.kind or ("generation" if len(shape) == 2 else "translation")
    latent = stated.latent_dim
    if kind == "generation":
        latent = _latent_dim(stated, shape, path)
    else:
        _check_image_io(inputs[0], outputs[0], path)
        if stated.input_size is None and stated.input_range is None and size is None and input_range is None:
            log(
                f"Note: {path.name} has no gantool metadata; assuming an image translation model "
                f"fed at {DEFAULT_SIZE}px in range -1,1 (set --size and --input-range otherwise)."
            )
    info = ModelInfo(
        path=path,
        kind=kind,  # type: ignore[arg-type]
        model=stated.model,
        direction=stated.direction,
        domain_from=stated.domain_from,
        domain_to=stated.domain_to,
        input_size=size or stated.input_size or DEFAULT_SIZE,
        size_multiple=stated.size_multiple or 1,
        input_range=input_range or stated.input_range or DEFAULT_RANGE,
        channel_order=stated.channel_order or "RGB",
        latent_dim=latent,
        version=stated.version,
        input_name=inputs[0].name,
        output_name=outputs[0].name,
        input_shape=shape,
        from_metadata=bool(onnx_meta.gantool_entries(meta)),
        metadata=meta,
    )
    if kind == "translation":
        _check_fixed_size(info, size is not None, log)
    return info


def _latent_dim(stated: onnx_meta.ModelMetadata, shape: tuple[Any, ...], path: Path) -> int:
    """A generation model's latent size: from its metadata, else from a fixed input shape."""
    if stated.latent_dim is not None:
        return stated.latent_dim
    if len(shape) >= 2 and isinstance(shape[1], int):
        return onnx_meta.check_latent_dim(shape[1], f"{path.name} (input shape)")
    raise GantoolError(f"{path.name}: generation model without gantool.latent_dim")


def _check_image_io(inp: Any, out: Any, path: Path) -> None:
    """A translation model takes and gives NCHW images with 3 input channels."""
    if isinstance(out.shape, list) and len(out.shape) != 4:
        raise GantoolError(
            f"{path.name}: output '{out.name}' has shape {list(out.shape)}, "
            "not an image (NCHW); this is not an image translation model"
        )
    shape = list(inp.shape)
    if len(shape) != 4:
        raise GantoolError(
            f"{path.name}: input '{inp.name}' has shape {shape}; an image model needs NCHW input"
        )
    if isinstance(shape[1], int) and shape[1] != 3:
        raise GantoolError(f"{path.name}: the model takes {shape[1]} channels; only 3 (RGB) work")


def _check_fixed_size(info: ModelInfo, size_asked: bool, log: Log) -> None:
    """Refuse a fixed input shape too large to allocate; say when ``--size`` cannot be met."""
    if info.fixed_hw is not None:
        for side in info.fixed_hw:  # a fixed [1, 3, 60000, 60000] must fail here, not in resize
            onnx_meta.check_input_size(side, info.path.name, "its fixed input shape's side")
    note = info.size_note() if size_asked else None
    if note:
        log(f"Note: {note}.")


def create_session(path: Path, provider: str = "auto", log: Log = stderr_log,
                   threads: int | None = None) -> Any:
    """An ``InferenceSession`` on the requested provider, or on the CPU with one line why.

    ``threads`` sets onnxruntime's intra-op threads (default: one per core) for streams
    where other stages share the cores; its threads then sleep instead of spinning
    between runs, so they leave those cores to capture and face detection.

    ``auto`` tries CUDA, then OpenVINO. Any provider this onnxruntime package lacks, or that
    does not start here, falls back to the CPU (TensorRT to CUDA first) and :data:`log` gets one
    line saying why and what runs instead (see :mod:`translator.runtime.providers`).
    """
    session, plan = _open(path, provider, threads)
    line = providers.fallback_line(provider, plan, session.get_providers()[0])
    if line is not None:
        log(line)
    return session


def provider_check(path: Path, provider: str) -> str | None:
    """Why ``path`` does not run on ``provider`` here (None: it does), by opening it there."""
    return _open(path, provider, None)[1].reason


def _open(path: Path, provider: str, threads: int | None) -> tuple[Any, providers.ProviderPlan]:
    import onnxruntime as ort

    if provider not in providers.PROVIDERS:
        raise GantoolError(f"unknown provider '{provider}'; choose from {', '.join(providers.PROVIDERS)}")
    path = check_model_path(path)
    plan = providers.plan_providers(provider, ort.get_available_providers())
    if plan.wanted.preload and plan.chain[0] != _CPU:
        plan.preload_output = providers.quiet_preload(ort)
    # onnxruntime logs its errors (coloured "[E:onnxruntime:...]" lines) before raising, and
    # without CUDA libraries an error and a warning before falling back: each becomes our
    # own one line (the exception, or the fallback note), so only fatal ones may print.
    ort.set_default_logger_severity(4)
    session = _started(ort, path, _session_options(ort, threads), plan)
    if plan.reason is None and session.get_providers()[0] != plan.chain[0]:
        plan.reason = providers.why_not_used(plan)
    return session, plan


def _session_options(ort: Any, threads: int | None) -> Any:
    options = ort.SessionOptions()
    options.log_severity_level = 4
    if threads is not None:
        options.intra_op_num_threads = max(1, threads)
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def _started(ort: Any, path: Path, options: Any, plan: providers.ProviderPlan) -> Any:
    """A session on ``plan``'s providers; when one of them refuses to start (an exception,
    where CUDA falls back quietly), a session on the CPU with the reason in ``plan``. A
    file the CPU cannot load either is the user's error, said as :func:`_load_error` says it."""
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=plan.chain,
                                    provider_options=plan.options)
    except Exception as exc:
        if plan.chain == [_CPU]:
            raise _load_error(path, exc) from None
        failed = exc
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=[_CPU])
    except Exception as exc:
        raise _load_error(path, exc) from None
    first = str(failed).strip().splitlines()[0].split(" : ")[-1].strip() if str(failed) else ""
    plan.reason = f"{plan.wanted.ort_name} failed to start: {first[:200] or type(failed).__name__}"
    return session


def _load_error(path: Path, exc: Exception) -> GantoolError:
    text = str(exc)
    name = type(exc).__name__
    if name == "InvalidProtobuf" or "Protobuf parsing failed" in text or "No graph was found" in text:
        return GantoolError(f"{path} is not an ONNX model (onnxruntime could not parse it)")
    if "No Op registered" in text or "not a registered function/op" in text:
        op = text.split("No Op registered for ")[-1] if "No Op registered" in text else (
            text.split("Fatal error: ")[-1])
        return GantoolError(f"{path.name} uses an operator this onnxruntime does not have "
                            f"({op.strip()[:200]}); it is an ONNX model, but not one gantool can run")
    short = text.splitlines()[0] if text else name
    # onnxruntime messages start with "[ONNXRuntimeError] : N : CODE :"; keep the tail.
    short = short.split(" : ")[-1].strip()
    return GantoolError(f"cannot load {path.name} in onnxruntime: {short[:300]}")


class OpenModel(Protocol):
    """A translation model ready to run frames: a :class:`ModelSession`, or a checkpoint's
    generator in PyTorch (``gantool translate``)."""

    info: ModelInfo
    provider: str

    @property
    def provider_name(self) -> str: ...

    def run(self, batch: np.ndarray) -> np.ndarray: ...


class ModelSession:
    """An onnxruntime session plus the :class:`ModelInfo` needed to feed it.

    ``run`` takes and returns NCHW float32 numpy arrays in the model's range. On CUDA the
    input is bound once to device memory and the output is allocated there (IO binding), so
    each frame crosses host<->device exactly once each way.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        provider: str = "auto",
        size: int | None = None,
        input_range: tuple[float, float] | str | None = None,
        log: Log = stderr_log,
        threads: int | None = None,
    ) -> None:
        self.path = check_model_path(path)
        if isinstance(input_range, str):
            input_range = parse_range(input_range)
        if size is not None:
            onnx_meta.check_input_size(size, "--size", "the processing size")
        self.session = create_session(self.path, provider, log, threads)
        self.info = model_info(self.session, self.path, size, input_range, log)
        self.provider = self.session.get_providers()[0]
        self._io_binding = self.provider in providers.CUDA_DEVICE_PROVIDERS

    @property
    def provider_name(self) -> str:
        """Short name of the provider in use (``--provider``'s name for it: cpu, cuda...)."""
        return providers.short_name(self.provider)

    def run(self, batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if self._io_binding:
            binding = self.session.io_binding()
            binding.bind_cpu_input(self.info.input_name, batch)
            binding.bind_output(self.info.output_name, "cuda")
            self.session.run_with_iobinding(binding)
            return binding.copy_outputs_to_cpu()[0]
        return self.session.run([self.info.output_name], {self.info.input_name: batch})[0]
