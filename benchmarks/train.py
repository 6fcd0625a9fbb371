"""Training speed: a plain reference-style CycleGAN step against gantool's path, in one run.

    python benchmarks/train.py --models cyclegan cyclegan-mobile --size 256 --device auto
    python benchmarks/train.py --models cyclegan --batch-size 1 --paths gantool gantool-compile
    python benchmarks/train.py --models cyclegan cut fastcut --size 64 --device cpu

For each model and size, two configurations are timed:

- ``baseline``: the step written the plain way, as junyanz/pytorch-CycleGAN-and-pix2pix
  does it: eager fp32, batch 1, contiguous (NCHW) tensors, plain Adam, ``requires_grad``
  toggled on the discriminators, one backward per discriminator; gantool's networks.
  For ``cut`` and ``fastcut`` it is CycleGAN's reference step at the same generator and
  size: their "speed x" and "mem x" are against CycleGAN.
- ``gantool``: the model's ``train_step`` through a ``StepContext`` set up as the training
  loop sets it up: on CUDA bf16 autocast (``--precision auto``), channels_last, cuDNN
  benchmark and TF32, ``--batch-size`` images per step; on the CPU fp32 and NCHW, as the
  loop does there. ``--paths`` adds variants (NCHW, ``torch.compile``, CUDA graphs), timed
  in the same process.

Images per second is the median over ``--repeats`` timed runs of ``--steps`` steps each,
after ``--warmup`` steps; the two paths live in one process and their repeats alternate, so
that load from other processes on a shared machine slows both alike. (The loop's global
cuDNN/TF32 settings are switched on around gantool's steps only.) Peak memory is measured in
a separate process per path (``--warmup`` + 2 steps): ``torch.cuda.max_memory_allocated``
on CUDA, the process's peak resident set size (``ru_maxrss``, Python and torch included) on
the CPU.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import warnings
from typing import Any

import torch

VARIANTS = {"cyclegan": "resnet", "cyclegan-unet": "unet", "cyclegan-mobile": "mobile"}
#: Models whose baseline is another's reference step: CUT and FastCUT (ResNet generator by
#: default) against CycleGAN at the same generator and size, as their paper compares them.
BASELINE_OF = {"cut": "cyclegan", "fastcut": "cyclegan"}


def machine() -> str:
    """The lines that go above a figure in BENCHMARKS.md."""
    lines = [
        f"date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"host: {platform.platform()}; CPU: {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} logical cores, torch threads {torch.get_num_threads()}",
        f"python {platform.python_version()}, torch {torch.__version__}",
    ]
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        lines.append(f"GPU: {props.name}, {props.total_memory / 2**30:.0f} GiB, "
                     f"CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}")
    else:
        lines.append("GPU: none")
    return "\n".join(lines)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def model_config(model: str, size: int) -> Any:
    from translator.registry import get_registry

    spec = get_registry().model(model)
    return spec, spec.config(size=size)


# -- the baseline: the reference implementation's step, written out ----------------------------
class ReferenceStep:
    """``CycleGANModel.optimize_parameters`` of the reference, on gantool's networks."""

    def __init__(self, model: str, size: int, device: torch.device) -> None:
        from translator.plugins.cyclegan.model import build_discriminator
        from translator.plugins.cyclegan.pool import ImagePool
        from translator.plugins.cyclegan.variants import build_generator

        from translator.training.gan import init_normal

        _, cfg = model_config(model, size)
        self.cfg = cfg
        variant = VARIANTS[model]
        self.G_A = build_generator(cfg, variant).to(device)
        self.G_B = build_generator(cfg, variant).to(device)
        self.D_A = build_discriminator(cfg).to(device)
        self.D_B = build_discriminator(cfg).to(device)
        for net in (self.G_A, self.G_B, self.D_A, self.D_B):
            init_normal(net, cfg.init_std)
        betas = (cfg.beta1, cfg.beta2)
        self.opt_G = torch.optim.Adam([*self.G_A.parameters(), *self.G_B.parameters()],
                                      lr=cfg.lr, betas=betas)
        self.opt_D = torch.optim.Adam([*self.D_A.parameters(), *self.D_B.parameters()],
                                      lr=cfg.lr, betas=betas)
        self.pool_A, self.pool_B = ImagePool(cfg.pool_size), ImagePool(cfg.pool_size)
        self.mse, self.l1 = torch.nn.MSELoss(), torch.nn.L1Loss()

    def gan_loss(self, pred: torch.Tensor, real: bool) -> torch.Tensor:
        target = torch.tensor(1.0 if real else 0.0, device=pred.device).expand_as(pred)
        return self.mse(pred, target)

    @staticmethod
    def set_requires_grad(nets: list[torch.nn.Module], flag: bool) -> None:
        for net in nets:
            for p in net.parameters():
                p.requires_grad = flag

    def backward_d(self, net: torch.nn.Module, real: torch.Tensor, fake: torch.Tensor) -> None:
        loss = (self.gan_loss(net(real), True) + self.gan_loss(net(fake.detach()), False)) * 0.5
        loss.backward()

    def __call__(self, real_A: torch.Tensor, real_B: torch.Tensor) -> None:
        cfg = self.cfg
        fake_B = self.G_A(real_A)
        rec_A = self.G_B(fake_B)
        fake_A = self.G_B(real_B)
        rec_B = self.G_A(fake_A)
        # G_A and G_B
        self.set_requires_grad([self.D_A, self.D_B], False)
        self.opt_G.zero_grad()
        lam_idt = cfg.lambda_identity * cfg.lambda_cycle
        loss_idt_A = self.l1(self.G_A(real_B), real_B) * lam_idt
        loss_idt_B = self.l1(self.G_B(real_A), real_A) * lam_idt
        loss_G = (self.gan_loss(self.D_A(fake_B), True) + self.gan_loss(self.D_B(fake_A), True)
                  + self.l1(rec_A, real_A) * cfg.lambda_cycle
                  + self.l1(rec_B, real_B) * cfg.lambda_cycle + loss_idt_A + loss_idt_B)
        loss_G.backward()
        self.opt_G.step()
        # D_A and D_B
        self.set_requires_grad([self.D_A, self.D_B], True)
        self.opt_D.zero_grad()
        self.backward_d(self.D_A, real_B, self.pool_B.query(fake_B))
        self.backward_d(self.D_B, real_A, self.pool_A.query(fake_A))
        self.opt_D.step()


# -- gantool's path ---------------------------------------------------------------------------
#: gantool's variants: (memory format channels-last?, torch.compile mode or None for eager).
#: ``gantool`` is what ``gantool train`` does; ``gantool-compile`` what ``--compile`` does.
PATHS = {
    "gantool": (True, None),
    "gantool-nchw": (False, None),
    "gantool-compile": (True, "default"),
    "gantool-compile-nchw": (False, "default"),
    "gantool-cudagraphs": (True, "reduce-overhead"),
    "gantool-cudagraphs-nchw": (False, "reduce-overhead"),
}


class GantoolStep:
    """The model's ``train_step`` with the loop's device settings (see ``translator.training``)."""

    def __init__(self, model: str, size: int, device: torch.device, variant: str) -> None:
        from translator.training.compile import maybe_compile
        from translator.training.device import choose_precision
        from translator.training.gan import StepContext

        channels_last, mode = PATHS[variant]
        spec, cfg = model_config(model, size)
        self.cuda = device.type == "cuda"
        self.model = spec.build(cfg).to(device)
        self.channels_last = channels_last and self.cuda
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        optimizers = self.model.configure_optimizers()
        amp = choose_precision("auto", device)
        scalers = {}
        if amp == torch.float16:
            scalers = {id(o): torch.amp.GradScaler("cuda") for o in optimizers.values()}
        self.ctx = StepContext(device, amp, scalers, 1)
        self.precision = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[amp]
        self.cudagraphs = mode == "reduce-overhead"
        if mode is not None:
            self.model = maybe_compile(self.model, mode)
        self.model.train()

    def __call__(self, real_A: torch.Tensor, real_B: torch.Tensor) -> None:
        if self.channels_last:
            real_A = real_A.contiguous(memory_format=torch.channels_last)
            real_B = real_B.contiguous(memory_format=torch.channels_last)
        if self.cudagraphs:
            torch.compiler.cudagraph_mark_step_begin()
        loop_step(self.model, {"a": real_A, "b": real_B}, self.ctx)


def loop_step(model: Any, batch: dict[str, torch.Tensor], ctx: Any) -> None:
    """``train_step`` under the loop's backend flags (on CUDA autotuning and TF32), put
    back afterwards so that the baseline's steps run without them."""
    from translator.training.device import restores_backend_flags, set_training_flags

    @restores_backend_flags
    def step() -> None:
        set_training_flags(ctx.device, deterministic=False)
        model.train_step(batch, ctx)

    step()


def make_step(args: argparse.Namespace, path: str, device: torch.device):
    if path == "baseline":
        return ReferenceStep(BASELINE_OF.get(args.model, args.model), args.size, device), 1, "fp32"
    step = GantoolStep(args.model, args.size, device, path)
    return step, args.batch, step.precision


def batches(batch: int, size: int, device: torch.device) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """A few distinct batches, so that nothing is accidentally cached between steps."""
    return [(torch.rand(batch, 3, size, size, device=device) * 2 - 1,
             torch.rand(batch, 3, size, size, device=device) * 2 - 1) for _ in range(4)]


def measure_memory(args: argparse.Namespace) -> dict[str, Any]:
    """Child process: peak memory of one path (its own process, so its own peak)."""
    device = pick_device(args.device)
    torch.manual_seed(0)
    step, batch, _ = make_step(args, args.path, device)
    data = batches(batch, args.size, device)
    for i in range(args.warmup + 2):
        step(*data[i % 4])
    sync(device)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {"peak_mib": peak}


def measure_speed(args: argparse.Namespace) -> dict[str, Any]:
    """Child process: both paths, their timed repeats interleaved (a busy machine slows both)."""
    device = pick_device(args.device)
    torch.manual_seed(0)
    paths = {}
    for path in ["baseline", *args.paths]:
        step, batch, precision = make_step(args, path, device)
        data = batches(batch, args.size, device)
        for i in range(args.warmup):
            step(*data[i % 4])
        paths[path] = {"step": step, "batch": batch, "precision": precision, "data": data,
                       "rates": []}
    sync(device)
    for _ in range(args.repeats):
        for p in paths.values():
            sync(device)
            began = time.perf_counter()
            for i in range(args.steps):
                p["step"](*p["data"][i % 4])
            sync(device)
            p["rates"].append(p["batch"] * args.steps / (time.perf_counter() - began))
    return {path: {"batch": p["batch"], "precision": p["precision"], "rates": p["rates"],
                   "images_per_s": statistics.median(p["rates"])} for path, p in paths.items()}


def profile_steps(args: argparse.Namespace, model: str, size: int) -> None:
    """torch.profiler over ``--steps`` of gantool's steps: where the time goes, and how busy
    the GPU is over the wall time (a launch-bound step keeps it idle between kernels)."""
    from torch.profiler import ProfilerActivity, profile

    device = pick_device(args.device)
    args.model, args.size = model, size
    torch.manual_seed(0)
    step, batch, _ = make_step(args, args.paths[0], device)
    data = batches(batch, size, device)
    for i in range(args.warmup):
        step(*data[i % 4])
    sync(device)
    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    began = time.perf_counter()
    with profile(activities=activities) as prof:
        for i in range(args.steps):
            step(*data[i % 4])
        sync(device)
    wall_us = (time.perf_counter() - began) * 1e6
    events = prof.key_averages()
    sort = "self_cuda_time_total" if cuda else "self_cpu_time_total"
    print(f"\nprofile: {model} {size} px, batch {batch}, {args.steps} steps")
    print(events.table(sort_by=sort, row_limit=args.profile_rows))
    if cuda:
        # Kernels only: an operator's row repeats the time of the kernels it launched.
        kernels = [e for e in events if e.device_type == torch.autograd.DeviceType.CUDA]
        busy = sum(e.self_device_time_total for e in kernels)
        launches = sum(e.count for e in kernels)
        print(f"GPU busy {busy / 1e3:.1f} ms of {wall_us / 1e3:.1f} ms wall "
              f"({100 * busy / wall_us:.0f} %, profiler overhead included); "
              f"{launches / args.steps:.0f} kernels per step")


def child(args: argparse.Namespace, model: str, size: int, what: str, path: str = "") -> dict[str, Any]:
    cmd = [sys.executable, os.path.abspath(__file__), "--child", what, "--models", model,
           "--size", str(size), "--device", args.device, "--steps", str(args.steps),
           "--warmup", str(args.warmup), "--repeats", str(args.repeats), "--batch-size", str(args.batch),
           "--paths", *args.paths]
    if path:
        cmd += ["--path", path]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{model} {size} {what} {path} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    warnings.filterwarnings("ignore")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["cyclegan", "cyclegan-mobile"],
                        choices=sorted([*VARIANTS, *BASELINE_OF]))
    parser.add_argument("--size", nargs="+", type=int, default=[256], help="image sizes (pixels)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="gantool's images per step (default: 8 on CUDA, 1 on the CPU)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--steps", type=int, default=5, help="steps per timed repeat")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats (median reported)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--paths", nargs="+", default=["gantool"], choices=sorted(PATHS),
                        help="gantool's variants to time against the baseline: channels-last or "
                        "NCHW, eager, compiled (--compile) or compiled with CUDA graphs")
    parser.add_argument("--no-memory", dest="memory", action="store_false",
                        help="skip the peak-memory processes (each compiles again)")
    parser.add_argument("--profile", action="store_true",
                        help="instead of timing, profile --steps of gantool's steps (torch.profiler) "
                        "and print the top operations")
    parser.add_argument("--profile-rows", type=int, default=25, help="operations in the profile table")
    parser.add_argument("--child", choices=["speed", "memory"], help=argparse.SUPPRESS)
    parser.add_argument("--path", choices=["baseline", *PATHS], help=argparse.SUPPRESS)
    args = parser.parse_args()
    device = pick_device(args.device)
    args.batch = args.batch_size or (8 if device.type == "cuda" else 1)

    if args.child:
        args.model, args.size = args.models[0], args.size[0]
        measure = measure_speed if args.child == "speed" else measure_memory
        print(json.dumps(measure(args)))
        return

    print(machine())
    if args.profile:
        for model in args.models:
            for size in args.size:
                profile_steps(args, model, size)
        return
    print(f"device {device}; {args.warmup} warm-up steps, median of {args.repeats} x "
          f"{args.steps} steps; peak memory: "
          + ("torch.cuda.max_memory_allocated" if device.type == "cuda"
             else "peak RSS of the process (Python and torch included)"))
    print()
    header = (f"{'model':<16} {'size':>5} {'path':<23} {'batch':>5} {'prec':<5} {'img/s':>8} "
              f"{'peak MiB':>9} {'speed x':>8} {'mem x':>6}   img/s of each repeat")
    print(header)
    print("-" * len(header))
    for model in args.models:
        for size in args.size:
            speed = child(args, model, size, "speed")
            for path in speed:
                speed[path].update(child(args, model, size, "memory", path) if args.memory
                                   else {"peak_mib": float("nan")})
            base = speed["baseline"]
            for path, row in speed.items():
                ratio = row["images_per_s"] / base["images_per_s"]
                mem = row["peak_mib"] / base["peak_mib"]
                label = f"baseline ({BASELINE_OF[model]})" if path == "baseline" and \
                    model in BASELINE_OF else path
                print(f"{model:<16} {size:>5} {label:<23} {row['batch']:>5} "
                      f"{row['precision']:<5} {row['images_per_s']:>8.2f} {row['peak_mib']:>9.0f} "
                      f"{ratio:>8.2f} {mem:>6.2f}   "
                      + " ".join(f"{r:.2f}" for r in row["rates"]), flush=True)
    print("\nspeed x: images/s relative to the baseline of the same model and size (repeats of "
          "the two paths interleaved in one process); mem x: peak memory relative to it "
          "(each path alone in a process).")


if __name__ == "__main__":
    main()
