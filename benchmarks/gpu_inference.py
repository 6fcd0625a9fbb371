"""Inference speed on a GPU: each CycleGAN generator at 256 px through PyTorch (eager fp32,
half precision channels-last, compiled) and onnxruntime's CUDA provider when it works.

    python benchmarks/gpu_inference.py --variants cyclegan cyclegan-unet cyclegan-mobile \\
        --batches 1 16 --compile

Generators are built at the reference widths with random weights (speed does not depend
on them). Each figure is the median over ``--repeats`` timed runs of ``--iters`` calls
after warm-up, timed with CUDA events around the calls and inputs rotated over four
buffers; ``rel err`` is ||out - fp32|| / ||fp32|| on the same input. The onnxruntime rows
include copying the batch to the GPU and the result back (as ``gantool apply`` does); the
PyTorch rows start and end on the GPU.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

VARIANTS = ("cyclegan", "cyclegan-unet", "cyclegan-mobile")
HALF = {"bf16": torch.bfloat16, "fp16": torch.float16}


def on_inputs(fn: Callable[[Any], Any], inputs: Sequence[Any]) -> Callable[[int], Any]:
    """``fn`` of input ``i``, cycling through ``inputs`` (so no call reuses the last one's)."""
    return lambda i: fn(inputs[i % len(inputs)])


def median_ms(fn: Callable[[int], Any], warmup: int, iters: int, repeats: int) -> float:
    """Median milliseconds per call of ``fn(i)``, by CUDA events over ``iters`` calls."""
    for i in range(warmup):
        fn(i)
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for i in range(iters):
            fn(i)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / iters)
    return statistics.median(times)


def relative_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    out, ref = out.float().cpu(), ref.float().cpu()
    return float((out - ref).norm() / ref.norm())


def torch_paths(module: torch.nn.Module, compile_: bool) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    """Name -> a callable from a GPU batch (NCHW fp32) to the output."""
    fp32 = module.cuda().eval()
    paths: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"torch eager fp32": fp32}
    for name, dtype in HALF.items():
        paths[f"torch eager {name} CL"] = _half_call(_half_copy(fp32, dtype), dtype)
    if compile_:
        # fp16 only (bf16 runs at the same speed and keeps fewer mantissa bits), with CUDA
        # graphs: one launch per call instead of one per kernel.
        compiled = _half_call(torch.compile(_half_copy(fp32, torch.float16),
                                            mode="reduce-overhead"), torch.float16)

        def replay(x: torch.Tensor) -> torch.Tensor:
            torch.compiler.cudagraph_mark_step_begin()  # the last call's output is consumed
            return compiled(x)

        paths["torch compiled fp16 CL graphs"] = replay
    return paths


def _half_copy(module: torch.nn.Module, dtype: torch.dtype) -> torch.nn.Module:
    import copy

    half = copy.deepcopy(module).to(dtype)
    return half.to(memory_format=torch.channels_last)  # type: ignore[call-overload]


def _half_call(module: Any, dtype: torch.dtype) -> Callable[[torch.Tensor], torch.Tensor]:
    def call(x: torch.Tensor) -> torch.Tensor:
        return module(x.to(dtype).contiguous(memory_format=torch.channels_last))
    return call


def exported(name: str, size: int, folder: Path) -> tuple[torch.nn.Module, dict[str, Path]]:
    """The generator (random weights, seed 0) and its ONNX files, fp32 and ``--fp16``."""
    import onnx
    from runtime import export_variant
    from translator.exporters.onnx_export import to_fp16

    module, fp32_path = export_variant(name, size, folder)
    half_path = fp32_path.with_name(f"{fp32_path.stem}-fp16.onnx")
    onnx.save_model(to_fp16(onnx.load(str(fp32_path))), str(half_path))
    return module, {"fp32": fp32_path, "fp16": half_path}


def onnx_paths(files: dict[str, Path]) -> dict[str, Any]:
    """onnxruntime CUDA sessions for the files, if the CUDA provider works."""
    from translator.errors import GantoolError
    from translator.runtime.session import ModelSession

    try:
        return {f"onnxruntime cuda {precision}": ModelSession(path, "cuda", log=lambda _: None)
                for precision, path in files.items()}
    except GantoolError as exc:
        print(f"  onnxruntime CUDA skipped: {exc}")
        return {}


def bench(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    for name in args.variants:
        with tempfile.TemporaryDirectory() as tmp:
            # Exported first, on the CPU, before the module moves to the GPU.
            module, files = exported(name, args.size, Path(tmp))
            sessions = onnx_paths(files) if args.onnx else {}
            paths = torch_paths(module, args.compile)
            for batch in args.batches:
                g = torch.Generator(device="cuda").manual_seed(batch)
                inputs = [torch.rand(batch, 3, args.size, args.size, device="cuda", generator=g) * 2 - 1
                          for _ in range(4)]
                with torch.inference_mode():
                    ref = paths["torch eager fp32"](inputs[0]).float()
                    for label, fn in paths.items():
                        ms = median_ms(on_inputs(fn, inputs), args.warmup, args.iters, args.repeats)
                        err = relative_error(fn(inputs[0]), ref)
                        rows.append(report(name, batch, label, ms, err))
                host = [x.cpu().numpy() for x in inputs]
                for label, session in sessions.items():
                    ms = median_ms(on_inputs(session.run, host), args.warmup, args.iters, args.repeats)
                    err = relative_error(torch.from_numpy(session.run(host[0])), ref)
                    rows.append(report(name, batch, label, ms, err))
        del paths
        torch.cuda.empty_cache()
    return rows


def report(name: str, batch: int, label: str, ms: float, err: float) -> dict[str, Any]:
    row = {"variant": name, "batch": batch, "path": label, "ms": ms,
           "images_per_s": batch * 1000 / ms, "rel_err": err}
    print(f"{name:<16} {batch:>5} {label:<28} {ms:>9.3f} {row['images_per_s']:>10.1f} "
          f"{err:>9.1e}", flush=True)
    return row


def main() -> None:
    warnings.filterwarnings("ignore")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 16])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--iters", type=int, default=20, help="calls per timed repeat")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile'd paths")
    parser.add_argument("--no-onnx", dest="onnx", action="store_false",
                        help="skip onnxruntime's CUDA provider")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("Error: no CUDA GPU: this benchmark times GPU inference")
    torch.backends.cudnn.benchmark = True
    props = torch.cuda.get_device_properties(0)
    print(f"GPU {props.name}, torch {torch.__version__}, CUDA {torch.version.cuda}, "
          f"cuDNN {torch.backends.cudnn.version()}; {args.size} px; median of {args.repeats} x "
          f"{args.iters} calls after {args.warmup}")
    print(f"{'variant':<16} {'batch':>5} {'path':<28} {'ms/call':>9} {'images/s':>10} {'rel err':>9}")
    bench(args)


if __name__ == "__main__":
    main()
