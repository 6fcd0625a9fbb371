"""The ``onnx`` exporter plugin: ``gantool export onnx RUN``.

Registered through ``register_exporters`` exactly as a third-party exporter would be.
Importing this module stays cheap (no torch, no onnx): the work lives in
:mod:`translator.exporters.onnx_export`, imported when an export runs.

``ExportRequest.options`` understood here: ``opset`` (int, default 18), ``fp16`` (bool),
``static_size`` (int pixels, fixes height and width), ``verify`` (bool, default True),
``int8`` (bool: static int8 quantization, :mod:`translator.exporters.onnx_int8`),
``min_psnr`` (float dB, int8's quality bar, default 30) and ``log`` (a callable taking one
line per written file, ``None`` for silence; default print).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import translator
from translator.specs import ExporterSpec, ExportRequest


def export_onnx(request: ExportRequest) -> list[Path]:
    """Export the run's generators; returns the written paths."""
    from .onnx_export import export_run

    return [f.path for f in export_run(request)]


@translator.hookimpl
def register_exporters(register: Callable[[ExporterSpec], None]) -> None:
    register(ExporterSpec(
        name="onnx",
        description="ONNX model per generator: dynamic batch/height/width, gantool metadata, "
                    "verified against PyTorch in onnxruntime",
        export=export_onnx,
    ))
