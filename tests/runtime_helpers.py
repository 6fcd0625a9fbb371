"""Small ONNX models, images and videos for the runtime tests (built on the fly, no downloads).

The main test model inverts colours exactly (``out = -x`` in the range -1..1), so "these
pixels changed" and "these did not" can be asserted precisely.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

GANTOOL_META = {
    "gantool.kind": "translation",
    "gantool.model": "invert",
    "gantool.direction": "a2b",
    "gantool.domain_from": "photo",
    "gantool.domain_to": "negative",
    "gantool.input_size": "64",
    "gantool.size_multiple": "4",
    "gantool.input_range": "-1,1",
    "gantool.channel_order": "RGB",
    "gantool.version": "0.1.0",
}


def _save(graph, path: Path, metadata: dict[str, str] | None) -> Path:
    import onnx
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 10
    if metadata:
        helper.set_model_props(model, metadata)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def make_invert_model(
    path: Path,
    metadata: dict[str, str] | None = GANTOOL_META,
    shape: tuple[str | int, ...] = ("N", 3, "H", "W"),
    scale: float = -1.0,
    offset: float = 0.0,
) -> Path:
    """``out = scale * x + offset`` on an NCHW float input (default: exact colour inversion
    for the -1..1 range). ``shape`` may fix dimensions, as foreign models do."""
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, list(shape))
    y = helper.make_tensor_value_info("translated", TensorProto.FLOAT, list(shape))
    consts = [
        helper.make_tensor("s", TensorProto.FLOAT, [], [scale]),
        helper.make_tensor("b", TensorProto.FLOAT, [], [offset]),
    ]
    nodes = [
        helper.make_node("Mul", ["image", "s"], ["scaled"]),
        helper.make_node("Add", ["scaled", "b"], ["translated"]),
    ]
    graph = helper.make_graph(nodes, "invert", [x], [y], initializer=consts)
    return _save(graph, path, metadata)


def make_generator_model(path: Path, latent_dim: int = 8, size: int = 8, dcgan_input: bool = False) -> Path:
    """A fixed linear map from ``[N, latent_dim]`` noise to ``tanh`` images ``[N, 3, size, size]``.

    ``dcgan_input`` makes the input ``[N, latent_dim, 1, 1]`` as DCGAN generators take it."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(1)
    weight = rng.standard_normal((latent_dim, 3 * size * size)).astype(np.float32)
    in_shape: list[str | int] = ["N", latent_dim, 1, 1] if dcgan_input else ["N", latent_dim]
    x = helper.make_tensor_value_info("z", TensorProto.FLOAT, in_shape)
    y = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, size, size])
    inits = [
        numpy_helper.from_array(weight, "w"),
        numpy_helper.from_array(np.array([-1, 3, size, size], np.int64), "shape"),
    ]
    nodes = [
        helper.make_node("Flatten", ["z"], ["z2"], axis=1),
        helper.make_node("MatMul", ["z2", "w"], ["flat"]),
        helper.make_node("Reshape", ["flat", "shape"], ["grid"]),
        helper.make_node("Tanh", ["grid"], ["image"]),
    ]
    graph = helper.make_graph(nodes, "generator", [x], [y], initializer=inits)
    meta = {
        "gantool.kind": "generation",
        "gantool.model": "linear",
        "gantool.latent_dim": str(latent_dim),
        "gantool.input_range": "-1,1",
    }
    return _save(graph, path, meta)


def astronaut() -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.astronaut())


def write_video(path: Path, frames: int = 60, size: tuple[int, int] = (96, 64), fps: float = 12.0):
    """An mp4v clip of a moving gradient: ``size`` is (width, height)."""
    import cv2

    w, h = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, (w, h))
    assert writer.isOpened()
    yy, xx = np.mgrid[0:h, 0:w]
    for i in range(frames):
        frame = np.stack(
            [(xx * 2 + i * 3) % 256, (yy * 3) % 256, np.full_like(xx, 80 + i % 100)], axis=-1
        ).astype(np.uint8)
        writer.write(frame)
    writer.release()
    return path


def count_frames(path: Path) -> tuple[int, float, int, int]:
    """(frames actually decoded, fps, width, height) of a video file."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), f"cannot open {path}"
    fps = cap.get(cv2.CAP_PROP_FPS)
    w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n, fps, w, h


def invoke(args: list[str]):
    """Run the gantool CLI in-process; returns click's Result."""
    from click.testing import CliRunner
    from translator.cli import cli

    return CliRunner().invoke(cli, args, catch_exceptions=False)


def fake_size_png(path: Path, width: int, height: int) -> Path:
    """A 1x1 PNG whose header claims ``width`` x ``height`` (a decompression bomb's header)."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buf, "PNG")
    raw = bytearray(buf.getvalue())
    ihdr = struct.pack(">II", width, height) + bytes(raw[24:29])
    raw[16:29] = ihdr
    raw[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr) & 0xFFFFFFFF)
    path.write_bytes(bytes(raw))
    return path


def send_unless_closed(sock, data: bytes) -> bool:
    """Send ``data`` on a raw client socket; False (sending nothing) once the server has
    closed the connection. For clients that trickle a request (``serve`` tests, benchmark)."""
    try:
        sock.setblocking(False)
        try:
            if sock.recv(1) == b"":
                return False
        except BlockingIOError:  # nothing to read: still open
            pass
        sock.setblocking(True)
        sock.sendall(data)
        return True
    except OSError:  # reset, or a timeout
        return False
