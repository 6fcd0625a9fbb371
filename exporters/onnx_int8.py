"""int8 ONNX export: static QDQ quantization calibrated on the run's own training images.

The fp32 graph from :mod:`translator.exporters.onnx_export` is quantized with
onnxruntime's static quantizer: QDQ format, per-channel int8 weights, uint8 activations
(the u8s8 pair that x86 VNNI kernels take), ranges from the run's training images. Some
layers stay in float (:data:`DEFAULT_KEEP_FLOAT`; DESIGN.md has the measurements). The
result is judged against the fp32 model on held-out images: PSNR of the int8 output
against the fp32 output, which must reach a threshold (30 dB by default).

This module imports onnx and onnxruntime; import it only when exporting.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from translator.errors import GantoolError

#: Default quality bar: int8 output against fp32 output on held-out images. 30 dB is an
#: average error of about 8/255 per channel, below what a viewer notices on a
#: translated photo; quantization that breaks a layer scores far lower (under 20 dB).
DEFAULT_MIN_PSNR = 30.0
CALIBRATION_IMAGES = 16
HELD_OUT_IMAGES = 8
#: Layer groups that may be kept in float instead of int8.
KEEP_FLOAT_CHOICES = ("instancenorm", "last-conv", "tanh")
#: Chosen by measurement (DESIGN.md has the table): only the last convolution, which
#: writes the image, gains from staying float (0.8 dB on a trained model).
DEFAULT_KEEP_FLOAT: tuple[str, ...] = ("last-conv",)

#: How activation ranges are taken from the calibration images (onnxruntime's names).
CALIBRATION_METHODS = {"minmax": "MinMax", "percentile": "Percentile", "entropy": "Entropy"}
DEFAULT_CALIBRATION = "minmax"

CALIBRATION_KEY = "gantool.int8_calibration"
PSNR_KEY = "gantool.int8_psnr"
KEEP_FLOAT_KEY = "gantool.int8_float_layers"


@dataclass(frozen=True)
class Int8Images:
    """Calibration and held-out inputs ([N, 3, H, W] float32 in -1..1) and where they came from."""

    calibration: np.ndarray
    held_out: np.ndarray
    #: e.g. "data=demo split=train domain=day calibration=3,17,... held-out=5,9,..."
    description: str


def _spread(count: int, wanted: int, seed: int) -> tuple[list[int], list[int]]:
    """Deterministic (calibration, held-out) indices into ``count`` images, disjoint."""
    order = np.random.default_rng(seed).permutation(count).tolist()
    held = max(1, min(HELD_OUT_IMAGES, count // 3))
    calib = max(1, min(wanted, count - held))
    return sorted(order[:calib]), sorted(order[calib:calib + held])


def run_images(rc: Any, direction: str | None, size: int) -> Int8Images:
    """Images of the generator's source domain, read through the run's data config.

    ``direction`` a2b reads domain a, b2a domain b (generation models cannot be calibrated
    from images and are refused earlier).
    """
    from translator.data.datasets import open_data
    from translator.data.pipeline import resize_square, to_tensor

    domains = open_data(rc.train, rc.spec.kind, "train", purpose="calibrate --int8 with")
    key = "b" if direction == "b2a" else "a"
    images = domains[key]
    calib, held = _spread(len(images), CALIBRATION_IMAGES, seed=int(rc.train.seed or 0))
    if not held or len(images) < 2:
        raise GantoolError(f"--int8 needs at least 2 training images in domain '{images.name}'")

    def load(indices: Iterable[int]) -> np.ndarray:
        return to_tensor([resize_square(images.load(i), size) for i in indices]).contiguous().numpy()

    description = (f"data={rc.train.data} split=train domain={images.name} "
                   f"calibration={','.join(map(str, calib))} held-out={','.join(map(str, held))}")
    return Int8Images(load(calib), load(held), description)


def float_node_names(model: onnx.ModelProto, keep_float: Sequence[str]) -> list[str]:
    """Names of the nodes that stay in float for the chosen layer groups."""
    unknown = sorted(set(keep_float) - set(KEEP_FLOAT_CHOICES))
    if unknown:
        raise GantoolError(f"unknown layer group(s) {', '.join(unknown)}; "
                           f"choose from {', '.join(KEEP_FLOAT_CHOICES)}")
    nodes = list(model.graph.node)
    names: list[str] = []
    if "instancenorm" in keep_float:
        names += [n.name for n in nodes if n.op_type == "InstanceNormalization"]
    if "tanh" in keep_float:
        names += [n.name for n in nodes if n.op_type == "Tanh"]
    if "last-conv" in keep_float:
        convs = [n for n in nodes if n.op_type in ("Conv", "ConvTranspose")]
        names += [convs[-1].name] if convs else []
    return names


class _Calibration:
    """onnxruntime's ``CalibrationDataReader`` protocol: one image per call, then None."""

    def __init__(self, input_name: str, images: np.ndarray) -> None:
        self.input_name = input_name
        self.images = list(images)

    def get_next(self) -> dict[str, np.ndarray] | None:
        if not self.images:
            return None
        return {self.input_name: self.images.pop(0)[None]}

    def rewind(self) -> None:  # called by some onnxruntime versions; one pass is all we need
        pass


def quantize(model: onnx.ModelProto, calibration: np.ndarray,
             keep_float: Sequence[str] = DEFAULT_KEEP_FLOAT,
             method: str = DEFAULT_CALIBRATION) -> onnx.ModelProto:
    """Static QDQ quantization of an fp32 image model; metadata is not carried over.
    ``method``: how activation ranges are set from the calibration images, one of
    :data:`CALIBRATION_METHODS`."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    from .quiet import captured_output

    input_name = model.graph.input[0].name
    with tempfile.TemporaryDirectory(prefix="gantool-int8-") as tmp, captured_output():
        source, target = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        # From a file: given a ModelProto, the quantizer moves its weights out to external
        # data in place, which breaks the caller's copy.
        onnx.save_model(model, str(source))
        try:
            quantize_static(
                source, target, _Calibration(input_name, calibration),
                quant_format=QuantFormat.QDQ, per_channel=True,
                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                nodes_to_exclude=float_node_names(model, keep_float),
                calibrate_method=getattr(CalibrationMethod, CALIBRATION_METHODS[method]),
                extra_options={"CalibTensorRangeSymmetric": False},
            )
        except GantoolError:
            raise
        except Exception as exc:
            detail = str(exc).strip().splitlines()
            raise GantoolError(f"int8 quantization failed: {type(exc).__name__}: "
                               f"{detail[0][:300] if detail else ''}") from None
        return onnx.load(str(target))


def run_model(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    """One pass of ``model`` over ``x`` in onnxruntime on the CPU, image by image."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), sess_options=options,
                                   providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: img[None]})[0] for img in x])


def psnr(reference: np.ndarray, test: np.ndarray) -> float:
    """PSNR in dB of two image batches in -1..1 (peak-to-peak 2, i.e. 255 in 8-bit terms)."""
    a = np.clip(reference.astype(np.float64), -1, 1)
    b = np.clip(test.astype(np.float64), -1, 1)
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(4.0 / mse)


@dataclass
class Int8Result:
    model: onnx.ModelProto
    psnr: float
    metadata: dict[str, str]


def to_int8(fp32: onnx.ModelProto, images: Int8Images, min_psnr: float, label: str,
            keep_float: Sequence[str] = DEFAULT_KEEP_FLOAT) -> Int8Result:
    """Quantize ``fp32`` and check it against the quality bar; :class:`GantoolError` below it."""
    int8 = quantize(fp32, images.calibration, keep_float)
    score = psnr(run_model(fp32, images.held_out), run_model(int8, images.held_out))
    if not score >= min_psnr:
        raise GantoolError(
            f"{label}: int8 output is {score:.1f} dB PSNR against fp32 on "
            f"{len(images.held_out)} held-out training images, below the {min_psnr:g} dB "
            f"required (--min-psnr); nothing written"
        )
    meta = {CALIBRATION_KEY: images.description, PSNR_KEY: f"{score:.2f}",
            KEEP_FLOAT_KEY: ",".join(keep_float) or "none"}
    return Int8Result(int8, score, meta)
