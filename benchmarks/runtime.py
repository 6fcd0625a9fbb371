"""Inference speed: PyTorch eager against onnxruntime, per CycleGAN variant, and end to end.

    python benchmarks/runtime.py                       # everything (slow on a small CPU)
    python benchmarks/runtime.py --quick               # batch 8 only for cyclegan-mobile

Each variant's generator is built at the reference widths (``cyclegan``: ResNet-9 with
ngf 64; ``cyclegan-unet``: UNet-256; ``cyclegan-mobile``: its defaults), randomly
initialised, and exported to ONNX with gantool's exporter into a temporary folder. Frames
per second at ``--size`` px for each batch size: PyTorch eager (fp32, inference mode) and
onnxruntime through ``ModelSession`` on the CPU, and on CUDA when a GPU works. Each figure
is the median of ``--repeats`` timed runs after ``--warmup`` runs; ``max err`` is the
largest difference between the onnxruntime and PyTorch outputs on the timed input.

End to end: ``run_webcam`` (the ``gantool webcam`` loop without a window) reads a synthetic
640x480 video of scikit-image's astronaut moving about, translates every frame with the
``--e2e-model`` variant's ONNX file, with and without ``--faces``; FPS is frames over the
loop's wall time (model loading included) and the loop's own smoothed FPS.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

VARIANTS = ("cyclegan", "cyclegan-unet", "cyclegan-mobile")


def machine() -> str:
    import onnxruntime as ort

    lines = [
        f"date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"host: {platform.platform()}; CPU: {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} logical cores, torch threads {torch.get_num_threads()}",
        f"python {platform.python_version()}, torch {torch.__version__}, "
        f"onnxruntime {ort.__version__}",
    ]
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        lines.append(f"GPU: {props.name}, {props.total_memory / 2**30:.0f} GiB, CUDA {torch.version.cuda}")
    else:
        lines.append("GPU: none")
    return "\n".join(lines)


def export_variant(name: str, size: int, folder: Path) -> tuple[torch.nn.Module, Path]:
    """A randomly initialised a2b generator of ``name`` and its ONNX file (with metadata)."""
    import onnx
    from translator.exporters.onnx_export import DEFAULT_OPSET, export_module, trace_input

    import translator
    from translator import onnx_metadata as meta
    from translator.registry import get_registry

    spec = get_registry().model(name)
    torch.manual_seed(0)
    model = spec.build(spec.config(size=size))
    gen = model.generators()["a2b"]
    proto, _ = export_module(gen, trace_input(gen, size, None), DEFAULT_OPSET, None,
                             "image", "translated")
    meta.write_props(proto, {
        **meta.prefixed(gen.metadata),
        meta.KIND: "translation", meta.MODEL: name, meta.DIRECTION: "a2b",
        meta.DOMAIN_FROM: "a", meta.DOMAIN_TO: "b", meta.INPUT_SIZE: str(size),
        meta.SIZE_MULTIPLE: str(gen.size_multiple), meta.INPUT_RANGE: "-1,1",
        meta.CHANNEL_ORDER: "RGB", meta.VERSION: translator.__version__,
        meta.PRECISION: "fp32", meta.CHECKPOINT_STEP: "0",
    })
    path = folder / f"{name}-a2b.onnx"
    onnx.save_model(proto, str(path))
    return gen.module.eval().float(), path


def median_seconds(fn: Callable[[], Any], warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def cuda_works() -> bool:
    """Whether onnxruntime can really run on CUDA here (listing the provider proves nothing)."""
    from translator.runtime.session import _no_gpu_reason

    return torch.cuda.is_available() and _no_gpu_reason() is None


def bench_variant(name: str, module: torch.nn.Module, path: Path, args: argparse.Namespace,
                  batches: list[int]) -> list[dict[str, Any]]:
    from translator.runtime.session import ModelSession

    rows = []
    providers = ["cpu"] + (["cuda"] if args.cuda else [])
    sessions = {p: ModelSession(path, p, log=lambda _: None) for p in providers}
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for batch in batches:
        x = (torch.rand(batch, 3, args.size, args.size, generator=torch.Generator().manual_seed(1))
             * 2 - 1)
        reference = None
        for dev in devices:
            net = module.to(dev)
            xd = x.to(dev)

            def run_torch(net=net, xd=xd, dev=dev) -> torch.Tensor:
                with torch.inference_mode():
                    out = net(xd)
                if dev == "cuda":
                    torch.cuda.synchronize()
                return out

            seconds = median_seconds(run_torch, args.warmup, args.repeats)
            out = run_torch().float().cpu()
            reference = out if reference is None else reference
            rows.append({"variant": name, "batch": batch, "engine": f"torch eager {dev}",
                         "fps": batch / seconds, "err": None})
        module.to("cpu")
        arr = x.numpy()
        for p, session in sessions.items():
            seconds = median_seconds(lambda s=session, a=arr: s.run(a), args.warmup, args.repeats)
            err = float(np.abs(session.run(arr) - reference.numpy()).max())
            rows.append({"variant": name, "batch": batch, "engine": f"onnxruntime {session.provider_name}",
                         "fps": batch / seconds, "err": err, "provider": p})
        for row in rows[-(len(devices) + len(sessions)):]:
            base = next(r for r in rows if r["variant"] == name and r["batch"] == batch
                        and r["engine"] == "torch eager cpu")
            row["ratio"] = row["fps"] / base["fps"]
            print_row(row)
    return rows


def print_row(row: dict[str, Any]) -> None:
    err = "" if row["err"] is None else f"{row['err']:.1e}"
    print(f"{row['variant']:<16} {row['batch']:>5} {row['engine']:<22} {row['fps']:>8.2f} "
          f"{row['ratio']:>8.2f} {err:>8}", flush=True)


def make_video(path: Path, frames: int, width: int = 640, height: int = 480) -> Path:
    """A video of scikit-image's astronaut (a real face) drifting across a grey frame."""
    import cv2
    from skimage import data

    face = cv2.resize(data.astronaut(), (360, 360), interpolation=cv2.INTER_AREA)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (width, height))
    for i in range(frames):
        canvas = np.full((height, width, 3), 96, np.uint8)
        x = 40 + int(120 * (0.5 + 0.5 * np.sin(i / 10)))
        y = 30 + int(60 * (0.5 + 0.5 * np.cos(i / 13)))
        canvas[y:y + 360, x:x + 360] = face
        writer.write(canvas[..., ::-1])  # OpenCV writes BGR
    writer.release()
    return path


def bench_end_to_end(path: Path, video: Path, args: argparse.Namespace, faces: bool) -> str:
    """One line: FPS of ``run_webcam`` over the video, or why it failed."""
    from translator.runtime.webcam import run_webcam

    provider = "cuda" if args.cuda else "cpu"
    label = f"  faces={'on ' if faces else 'off'}"
    try:
        # A short first pass: file cache, session and detector start-up out of the way.
        run_webcam(path, source=video, window=False, max_frames=5, faces=faces,
                   provider=provider, log=lambda _: None)
        began = time.perf_counter()
        result = run_webcam(path, source=video, window=False, max_frames=args.frames,
                            faces=faces, provider=provider, log=lambda _: None)
        seconds = time.perf_counter() - began
    except Exception as exc:  # report and go on: the other rows still mean something
        return f"{label}  failed: {type(exc).__name__}: {exc}"
    return (f"{label}  {result.frames / seconds:6.2f} FPS (loop's own smoothed FPS "
            f"{result.fps:.2f}; {result.frames} frames, {result.provider}, "
            f"dropped {result.dropped})")


def main() -> None:
    warnings.filterwarnings("ignore")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=VARIANTS,
                        help="variants to time (none: end to end only)")
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--quick", action="store_true",
                        help="batches above 1 for cyclegan-mobile only, 3 repeats, 1 warm-up")
    parser.add_argument("--e2e-model", default="cyclegan-mobile", choices=VARIANTS)
    parser.add_argument("--frames", type=int, default=100, help="end-to-end frames")
    parser.add_argument("--no-e2e", action="store_true", help="skip the end-to-end pipeline")
    parser.add_argument("--keep", type=Path, default=None, help="keep the ONNX files here")
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.warmup = 3, 1
    args.cuda = cuda_works()

    print(machine())
    print(f"{args.size}x{args.size} px, fp32; median of {args.repeats} runs after {args.warmup} "
          f"warm-up; onnxruntime providers: cpu" + (", cuda" if args.cuda else ""))
    print()
    header = f"{'variant':<16} {'batch':>5} {'engine':<22} {'FPS':>8} {'x torch':>8} {'max err':>8}"
    print(header)
    print("-" * len(header))
    folder = args.keep or Path(tempfile.mkdtemp(prefix="gantool-runtime-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        run_all(args, folder)
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)


def run_all(args: argparse.Namespace, folder: Path) -> None:
    files = {}
    for name in dict.fromkeys([*args.variants, *([] if args.no_e2e else [args.e2e_model])]):
        module, path = export_variant(name, args.size, folder)
        files[name] = path
        if name not in args.variants:
            continue
        batches = args.batches
        if args.quick and name != "cyclegan-mobile":
            batches = [b for b in batches if b == 1] or batches[:1]
        bench_variant(name, module, path, args, batches)
    print("\nx torch: FPS relative to PyTorch eager on the CPU, same variant and batch.")

    if not args.no_e2e:
        video = make_video(folder / "astronaut.mp4", args.frames)
        print(f"\nEnd to end (run_webcam, {args.e2e_model} at {args.size} px short side, "
              f"640x480 video, {args.frames} frames, batch 1):")
        for faces in (False, True):
            print(bench_end_to_end(files[args.e2e_model], video, args, faces), flush=True)


if __name__ == "__main__":
    main()
