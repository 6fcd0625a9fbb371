"""Inference speed: PyTorch eager against onnxruntime, fp32 against int8, per CycleGAN
variant, alone and end to end, against the machine's physical floor.

    python benchmarks/runtime.py                       # everything (slow on a small CPU)
    python benchmarks/runtime.py --quick               # batch 8 only for cyclegan-mobile

Each variant's generator is built at the reference widths (``cyclegan``: ResNet-9 with
ngf 64; ``cyclegan-unet``: UNet-256; ``cyclegan-mobile``: its defaults), randomly
initialised, and exported to ONNX with gantool's exporter into a temporary folder. Frames
per second at ``--size`` px for each batch size: PyTorch eager (fp32, inference mode) and
onnxruntime through ``ModelSession`` on the CPU, and on CUDA when a GPU works. Each figure
is the median of ``--repeats`` timed runs after ``--warmup`` runs; ``max err`` is the
largest difference between the onnxruntime and PyTorch outputs on the timed input.

End to end: ``run_webcam`` (the ``gantool webcam`` loop without a window) on a stand-in
30 FPS camera that plays a synthetic 640x480 video of scikit-image's astronaut moving
about, with the ``--e2e-model`` variant's ONNX file, with and without ``--faces``.

Precision table: per variant, fp32 and int8 (gantool's int8 quantizer, calibrated on
scikit-image photos and scored by PSNR against fp32 on other photos; with ``--run
VARIANT=RUN``, a trained run's generator, calibrated and scored on its own training images
as ``gantool export onnx --int8`` does) as the model alone
(batch 1, ``--size`` px: FPS and latency) and, for ``--e2e-model``, end to end without and
with faces (FPS over the loop's wall time, median latency capture to display, median
seconds per stage). The floor: FLOPs per frame (PyTorch's FLOP counter) against an fp32
matmul ceiling measured here, i.e. the frame rate if every FLOP ran at matmul speed.
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
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from translator.runtime.options import RuntimeOptions

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


def a2b_generator(name: str, size: int, run: Path | None) -> Any:
    """``run``'s trained a2b generator, or a randomly initialised one of ``name``."""
    from translator.registry import get_registry
    from translator.training.runs import load_model

    if run is None:
        spec = get_registry().model(name)
        torch.manual_seed(0)
        return spec.build(spec.config(size=size)).generators()["a2b"]
    model, rc, _ = load_model(run)
    if rc.spec.name != name:
        raise SystemExit(f"Error: --run {name}={run}: that run is of model '{rc.spec.name}'")
    return model.generators()["a2b"]


def export_variant(name: str, size: int, folder: Path,
                   run: Path | None = None) -> tuple[torch.nn.Module, Path]:
    """The a2b generator of ``name`` (trained, from ``run``, or random) and its ONNX file."""
    import onnx
    from translator.exporters.onnx_export import DEFAULT_OPSET, export_module, trace_input

    import translator
    from translator import onnx_metadata as meta

    gen = a2b_generator(name, size, run)
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
    from translator.runtime.providers import no_gpu_reason

    return torch.cuda.is_available() and no_gpu_reason() is None


def bench_variant(name: str, module: torch.nn.Module, path: Path, args: argparse.Namespace,
                  batches: list[int]) -> list[dict[str, Any]]:
    from translator.runtime.session import ModelSession

    rows: list[dict[str, Any]] = []
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
        assert reference is not None  # devices always include the CPU
        for p, session in sessions.items():
            seconds = median_seconds(partial(session.run, arr), args.warmup, args.repeats)
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
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 25.0, (width, height))
    for i in range(frames):
        canvas = np.full((height, width, 3), 96, np.uint8)
        x = 40 + int(120 * (0.5 + 0.5 * np.sin(i / 10)))
        y = 30 + int(60 * (0.5 + 0.5 * np.cos(i / 13)))
        canvas[y:y + 360, x:x + 360] = face
        writer.write(canvas[..., ::-1])  # OpenCV writes BGR
    writer.release()
    return path


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
    parser.add_argument("--no-precision", action="store_true",
                        help="skip the fp32/int8 table, the physical floor and end to end")
    parser.add_argument("--ratios-only", action="store_true",
                        help="only the end-to-end / model-alone table (no variant or precision "
                        "tables)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="interleaved rounds of the end-to-end / model-alone table")
    parser.add_argument("--keep", type=Path, default=None, help="keep the ONNX files here")
    parser.add_argument("--run", action="append", default=[], metavar="VARIANT=RUN",
                        help="time RUN's trained a2b generator for VARIANT instead of random "
                        "weights; its int8 file is calibrated and scored on RUN's training images")
    args = parser.parse_args()
    args.runs = {}
    for item in args.run:
        name, _, run = item.partition("=")
        if name not in VARIANTS or not run:
            parser.error(f"--run {item}: expected VARIANT=RUN with VARIANT one of {', '.join(VARIANTS)}")
        args.runs[name] = Path(run)
    if args.quick:
        args.repeats, args.warmup = 3, 1
        args.frames = min(args.frames, 40)
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


def matmul_ceiling(n: int = 1024, repeats: int = 5) -> float:
    """fp32 GFLOP/s of a square matmul on all of torch's threads (the dense-compute ceiling)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    seconds = median_seconds(lambda: a @ b, 2, repeats)
    return 2 * n**3 / seconds / 1e9


def flops_per_frame(module: torch.nn.Module, size: int) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        module(torch.zeros(1, 3, size, size))
    return float(counter.get_total_flops())


def photos(size: int) -> tuple[np.ndarray, np.ndarray]:
    """(calibration, held-out) batches of scikit-image photos at ``size`` px in -1..1."""
    import cv2
    from skimage import data

    def prep(img: np.ndarray, off: int) -> np.ndarray:
        img = img[off:off + min(img.shape[:2]) - off, off:off + min(img.shape[:2]) - off, :3]
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
        return img.astype(np.float32).transpose(2, 0, 1) / 127.5 - 1

    calib = [prep(f(), o) for f in (data.astronaut, data.coffee, data.chelsea, data.rocket)
             for o in (0, 40)]
    held = [prep(f(), 10) for f in (data.immunohistochemistry, data.hubble_deep_field)]
    held.append(prep(data.astronaut(), 120))
    return np.stack(calib), np.stack(held)


def int8_variant(path: Path, size: int, run: Path | None = None) -> tuple[Path, float]:
    """gantool's int8 version of an exported fp32 file, and its PSNR against fp32: calibrated
    and scored on ``run``'s own training images, as ``gantool export onnx --int8`` does, or
    on scikit-image photos for a random generator."""
    import onnx
    from translator.exporters.onnx_int8 import Int8Images, run_images, to_int8

    from translator import onnx_metadata as meta
    from translator.training.runs import read_run_config

    if run is None:
        images = Int8Images(*photos(size), "scikit-image photos")
    else:
        images = run_images(read_run_config(run), "a2b", size)
    fp32 = onnx.load(str(path))
    result = to_int8(fp32, images, float("-inf"), path.name)
    props = {**meta.read_props(fp32), meta.PRECISION: "int8", **result.metadata}
    meta.write_props(result.model, props)
    out = path.with_name(path.stem + "-int8.onnx")
    onnx.save_model(result.model, str(out))
    return out, result.psnr


def model_alone(path: Path, size: int, args: argparse.Namespace) -> float:
    """Median seconds of one batch-1 frame through onnxruntime on the CPU."""
    from translator.runtime.session import ModelSession

    session = ModelSession(path, "cpu", log=lambda _: None)
    x = np.random.default_rng(0).uniform(-1, 1, (1, 3, size, size)).astype(np.float32)
    return median_seconds(lambda: session.run(x), args.warmup, args.repeats)


class CameraFromVideo:
    """A stand-in for a 30 FPS webcam: the video's frames, looped, each one delivered no
    sooner than its time, so the loop sees a live source (newest frame wins)."""

    def __init__(self, video: Path, fps: float = 30.0) -> None:
        import cv2

        self.cap = cv2.VideoCapture(str(video))
        self.interval = 1.0 / fps
        self.next_at = time.perf_counter()

    def read(self) -> tuple[bool, Any]:
        import cv2

        ok, frame = self.cap.read()
        if not ok:
            self.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = self.cap.read()
        delay = self.next_at - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        self.next_at = max(self.next_at + self.interval, time.perf_counter())
        return ok, frame

    def get(self, prop: int) -> float:
        return 30.0

    def set(self, prop: int, value: float) -> bool:
        return True

    def isOpened(self) -> bool:  # noqa: N802 - cv2's name
        return True

    def release(self) -> None:
        self.cap.release()


def end_to_end(path: Path, video: Path, args: argparse.Namespace, faces: bool) -> dict[str, Any]:
    """The webcam loop on a 30 FPS camera made from ``video``."""
    from translator.runtime import sources, webcam

    def camera(index: int, timeout: float = 5.0) -> CameraFromVideo:
        return CameraFromVideo(video)

    sources.open_camera = camera
    options = RuntimeOptions(faces=faces, provider="cpu")
    webcam.run_webcam(path, 0, options, webcam.WebcamOptions(window=False, max_frames=5),
                      log=lambda _: None)  # session and detector start-up
    result = webcam.run_webcam(path, 0, options, webcam.WebcamOptions(window=False, max_frames=args.frames),
                               log=lambda _: None)
    return {"fps": result.mean_fps, "latency": result.latency, "stages": result.stage_seconds}


def precision_table(args: argparse.Namespace, files: dict[str, Path],
                    modules: dict[str, torch.nn.Module], video: Path | None) -> None:
    ceiling = matmul_ceiling()
    print(f"\nPrecision table ({args.size} px model input, batch 1; fp32 matmul ceiling "
          f"measured here: {ceiling:.0f} GFLOP/s)")
    header = (f"{'variant':<16} {'prec':<5} {'what':<14} {'FPS':>7} {'latency':>9} "
              f"{'PSNR':>7}  notes")
    print(header)
    print("-" * len(header))
    for name, path in files.items():
        flops = flops_per_frame(modules[name], args.size)
        floor = ceiling * 1e9 / flops
        int8_path, score = int8_variant(path, args.size, args.runs.get(name))
        for prec, p, psnr_db in (("fp32", path, None), ("int8", int8_path, score)):
            seconds = model_alone(p, args.size, args)
            psnr_text = "-" if psnr_db is None else f"{psnr_db:.1f}"
            note = f"{flops / 1e9:.1f} GFLOP/frame, floor {floor:.1f} FPS at the fp32 ceiling"
            print(f"{name:<16} {prec:<5} {'model alone':<14} {1 / seconds:>7.2f} "
                  f"{1000 * seconds:>7.0f}ms {psnr_text:>7}  {note}", flush=True)
            if video is None or name != args.e2e_model:
                continue
            for faces in (False, True):
                what = "e2e + faces" if faces else "e2e"
                try:
                    row = end_to_end(p, video, args, faces)
                except Exception as exc:  # report and go on
                    print(f"{name:<16} {prec:<5} {what:<14} failed: {type(exc).__name__}: {exc}")
                    continue
                stages = ", ".join(f"{k} {1000 * v:.0f}ms" for k, v in row["stages"].items())
                print(f"{name:<16} {prec:<5} {what:<14} {row['fps']:>7.2f} "
                      f"{1000 * row['latency']:>7.0f}ms {psnr_text:>7}  median per stage: {stages}",
                      flush=True)
    print("PSNR: int8 output against fp32 on held-out photos, or on the --run's held-out "
          "training images (dB). e2e: the threaded webcam "
          "loop on a 30 FPS 640x480 camera (a looped video); latency is capture to display "
          "(median); FPS at most 30.")


def model_alone_as_streamed(path: Path, args: argparse.Namespace, faces: bool) -> float:
    """Frames per second of the model alone, opened as ``gantool webcam`` opens it (its
    threads, which do not spin) and fed what the stream feeds it: a 640x480 frame's
    processing shape, or with faces the square face crop, one per frame."""
    from translator.runtime.pipeline import processing_shape
    from translator.runtime.session import ModelSession
    from translator.runtime.webcam import inference_threads

    session = ModelSession(path, "cpu", log=lambda _: None, threads=inference_threads(faces))
    side = session.info.processing_size
    h, w = (side, side) if faces else processing_shape(480, 640, session.info)
    x = np.random.default_rng(0).uniform(-1, 1, (1, 3, h, w)).astype(np.float32)
    # As many runs as the stream shows frames, so both figures span about the same time.
    return 1 / median_seconds(lambda: session.run(x), 2, args.frames)


def ratio_table(args: argparse.Namespace, path: Path, video: Path) -> None:
    """End to end against the model alone, in interleaved rounds so that a machine whose
    load changes during the run moves both figures of a round alike."""
    print(f"\nEnd to end / model alone ({args.e2e_model}, fp32, CPU; {args.rounds} interleaved "
          "rounds; model alone at the shape the stream feeds it, with the stream's threads)")
    header = f"{'round':<6} {'what':<7} {'model FPS':>10} {'e2e FPS':>8} {'ratio':>6}  median per stage"
    print(header)
    print("-" * len(header))
    ratios: dict[bool, list[float]] = {False: [], True: []}
    for n in range(args.rounds):
        for faces in (False, True):
            alone = model_alone_as_streamed(path, args, faces)
            row = end_to_end(path, video, args, faces)
            ratios[faces].append(row["fps"] / alone)
            stages = ", ".join(f"{k} {1000 * v:.0f}ms" for k, v in row["stages"].items())
            print(f"{n + 1:<6} {'faces' if faces else 'frame':<7} {alone:>10.2f} {row['fps']:>8.2f} "
                  f"{ratios[faces][-1]:>6.2f}  {stages}", flush=True)
    for faces, values in ratios.items():
        print(f"median ratio {'with' if faces else 'without'} faces: {statistics.median(values):.2f}")


def run_all(args: argparse.Namespace, folder: Path) -> None:
    if args.ratios_only:
        _, path = export_variant(args.e2e_model, args.size, folder, args.runs.get(args.e2e_model))
        ratio_table(args, path, make_video(folder / "astronaut.mp4", args.frames))
        return
    files = {}
    modules = {}
    for name in dict.fromkeys([*args.variants, *([] if args.no_e2e else [args.e2e_model])]):
        module, path = export_variant(name, args.size, folder, args.runs.get(name))
        files[name], modules[name] = path, module
        if name not in args.variants:
            continue
        batches = args.batches
        if args.quick and name != "cyclegan-mobile":
            batches = [b for b in batches if b == 1] or batches[:1]
        bench_variant(name, module, path, args, batches)
    print("\nx torch: FPS relative to PyTorch eager on the CPU, same variant and batch.")

    video = None if args.no_e2e else make_video(folder / "astronaut.mp4", args.frames)
    if not args.no_precision:
        precision_table(args, files, modules, video)
    if video is not None:
        ratio_table(args, files[args.e2e_model], video)


if __name__ == "__main__":
    main()
