"""What ``gantool inspect`` prints: an ONNX file's graph, size and metadata, and the
onnxruntime providers this machine offers.

onnx and onnxruntime are imported inside functions so that importing this module stays cheap.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from translator import onnx_metadata as meta
from translator.errors import GantoolError


def describe_onnx(path: Path) -> list[str]:
    """Lines describing an ONNX file: size, producer, opsets, inputs, outputs, metadata.

    Raises :class:`GantoolError` for a missing file or one that is not ONNX.
    """
    model = _load_graph(path)
    return [*_file_lines(model, path), *_io_lines(model), *_metadata_lines(meta.read_props(model))]


def _load_graph(path: Path) -> Any:
    import onnx
    from google.protobuf.message import DecodeError

    if not path.is_file():
        raise GantoolError(f"{path}: no such file" if not path.exists() else f"{path} is not a file")
    try:
        # Weights in external files are not needed to describe the graph.
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, RuntimeError, ValueError, OSError) as exc:
        raise GantoolError(f"{path} is not an ONNX model: {str(exc).splitlines()[0] if str(exc) else exc}") \
            from None
    if not model.HasField("graph") or not model.graph.output:
        raise GantoolError(f"{path} is not an ONNX model (no graph)")
    return model


def _file_lines(model: Any, path: Path) -> list[str]:
    import onnx

    external = sum(1 for t in model.graph.initializer
                   if t.data_location == onnx.TensorProto.EXTERNAL)
    size = f"{path.stat().st_size / 1e6:.2f} MB"
    size += f", weights in {external} external tensor(s)" if external else ", self-contained"
    producer = " ".join(p for p in (model.producer_name, model.producer_version) if p) or "unknown"
    opsets = ", ".join(f"{o.domain or 'ai.onnx'} {o.version}" for o in model.opset_import)
    return [f"File:     {path} ({size})",
            f"Producer: {producer}; IR version {model.ir_version}",
            f"Opset:    {opsets}"]


def _io_lines(model: Any) -> list[str]:
    initializers = {t.name for t in model.graph.initializer}
    inputs = [v for v in model.graph.input if v.name not in initializers]
    width = max(len(v.name) for v in [*inputs, *model.graph.output])
    lines: list[str] = []
    for title, values in (("Inputs:", inputs), ("Outputs:", model.graph.output)):
        lines.append(title)
        lines += [f"  {v.name:<{width}}  {_dtype(v):<8} {_dims(v)}" for v in values]
    return lines


def _metadata_lines(props: dict[str, str]) -> list[str]:
    """The ``gantool.*`` entries as written (so that a file the runtime refuses can still be
    read), then, for such a file, the runtime's reason; then any other entries."""
    ours = meta.gantool_entries(props)
    lines: list[str] = []
    if ours:
        lines.append("gantool metadata:")
        width = max(len(k) for k in ours)
        lines += [f"  {k:<{width}} = {v}" for k, v in ours.items()]
        try:
            meta.ModelMetadata.from_props(ours, "this file")
        except GantoolError as exc:
            lines.append(f"  Refused by the runtime: {exc}")
    else:
        lines.append("gantool metadata: none (not exported by gantool; the runtime needs "
                     "--size and --input-range for it)")
    others = {k: v for k, v in props.items() if k not in ours}
    if others:
        lines.append("Other metadata:")
        lines += [f"  {k} = {v[:120]}" for k, v in sorted(others.items())]
    return lines


def _dims(value_info: Any) -> str:
    tensor = value_info.type.tensor_type
    if not tensor.HasField("shape"):
        return "?"
    dims = [d.dim_param or (str(d.dim_value) if d.HasField("dim_value") else "?")
            for d in tensor.shape.dim]
    return "[" + ", ".join(dims) + "]"


def _dtype(value_info: Any) -> str:
    import onnx

    elem = value_info.type.tensor_type.elem_type
    try:
        return str(onnx.helper.tensor_dtype_to_np_dtype(elem))
    except (KeyError, TypeError, ValueError):  # e.g. bfloat16 has no numpy type
        return onnx.TensorProto.DataType.Name(elem).lower() if elem else "?"


def provider_lines(check_path: Path | None = None) -> list[str]:
    """The execution providers gantool knows, which of them this onnxruntime package has,
    and, with ``check_path``, whether that model really runs on each of those."""
    import onnxruntime as ort

    from .providers import PROVIDER_ROWS

    offered = ort.get_available_providers()
    lines = [f"onnxruntime {ort.__version__} ({ort.get_device()}) offers: {', '.join(offered)}"]
    width = max(len(row.name) for row in PROVIDER_ROWS)
    for row in PROVIDER_ROWS:
        if row.ort_name not in offered:
            state = f"not in this package ({row.install})" if row.install else "not in this package"
        elif check_path is None:
            state = "in this package"
        else:
            state = _usable(check_path, row.name)
        lines.append(f"  --provider {row.name:<{width}}  {row.ort_name:<26} {state}")
    if check_path is None and any(p != "CPUExecutionProvider" for p in offered):
        lines.append("  Note: in the package only means compiled in: onnxruntime-gpu lists CUDA and says")
        lines.append("  'GPU' even without a GPU or CUDA/cuDNN libraries. Opening a model on each")
        lines.append("  finds out: gantool providers --check FILE.onnx (or inspect --check-providers).")
    return lines


def _usable(path: Path, provider: str) -> str:
    from .session import provider_check

    reason = provider_check(path, provider)
    return "usable" if reason is None else f"not usable ({reason})"
