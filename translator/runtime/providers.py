"""onnxruntime's execution providers as gantool offers them: one row per provider (its
``--provider`` name, onnxruntime's name, the options gantool gives it, how to get it), and
the choice of what a session really runs on.

A provider is used when the installed onnxruntime package lists it *and* a session on it
really starts; otherwise the session runs on what is left (the CPU, or CUDA under
TensorRT) and one line says why. Listing proves little: onnxruntime-gpu lists CUDA on
machines without a GPU, and quietly falls back to the CPU when CUDA's libraries are missing.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"

#: Providers whose sessions take an input bound once to device memory (IO binding on "cuda").
CUDA_DEVICE_PROVIDERS = frozenset({CUDA, TENSORRT})


def cache_dir(name: str) -> Path:
    """A folder in the user's cache (``$XDG_CACHE_HOME``, else ``~/.cache``) for compiled
    engines, so only a model's first session pays for building them."""
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "gantool" / name


def _made(folder: Path) -> Path | None:
    with contextlib.suppress(OSError):
        folder.mkdir(parents=True, exist_ok=True)
    return folder if folder.is_dir() else None  # a read-only home: nothing is cached


def _no_options() -> dict[str, str]:
    return {}


def _cuda_options() -> dict[str, str]:
    """cuDNN's heuristic choice of convolution algorithm, since the default exhaustive
    search runs again for every new input shape (every upload in ``serve``, every size
    group in ``apply``); and an arena that grows by what is asked, not in powers of two."""
    return {"cudnn_conv_algo_search": "HEURISTIC", "arena_extend_strategy": "kSameAsRequested"}


def _tensorrt_options() -> dict[str, str]:
    """Engines and timings cached on disk, so that only the first run builds them."""
    cache = _made(cache_dir("tensorrt"))
    if cache is None:
        return {}
    return {"trt_engine_cache_enable": "True", "trt_timing_cache_enable": "True",
            "trt_engine_cache_path": str(cache), "trt_timing_cache_path": str(cache)}


def _openvino_options() -> dict[str, str]:
    """fp32 as the file says: OpenVINO's own default on CPUs with bf16 support is bf16,
    which changes the output; compiled models cached on disk."""
    options = {"device_type": "CPU", "precision": "FP32"}
    cache = _made(cache_dir("openvino"))
    if cache is not None:
        options["cache_dir"] = str(cache)
    return options


def no_gpu_reason() -> str | None:
    """A reason CUDA cannot work that is cheap to know before trying (Linux only)."""
    if sys.platform.startswith("linux") and not os.path.exists("/proc/driver/nvidia/version"):
        return "no NVIDIA GPU driver found"
    return None


def _no_reason() -> str | None:
    return None


def _gpu_precheck() -> str | None:
    return no_gpu_reason()  # looked up when called, so a test can stand in for the driver


@dataclass(frozen=True)
class ProviderRow:
    """One execution provider: what ``--provider`` calls it, what onnxruntime calls it, the
    options gantool gives it, and how a user gets a package that has it."""

    name: str
    ort_name: str
    options: Callable[[], dict[str, str]] = _no_options
    #: Where to get an onnxruntime package with this provider (one onnxruntime package at
    #: a time: each of these replaces the plain one).
    install: str = ""
    #: A reason it cannot work that is known without trying (None: try it).
    precheck: Callable[[], str | None] = _no_reason
    #: Providers asked for after this one, before the CPU, for the nodes it cannot run.
    helpers: tuple[str, ...] = ()
    #: Loads CUDA/cuDNN from nvidia-* wheels or torch before the session starts.
    preload: bool = False


PROVIDER_ROWS: tuple[ProviderRow, ...] = (
    ProviderRow("cpu", CPU),
    ProviderRow("cuda", CUDA, _cuda_options, "pip install onnxruntime-gpu",
                _gpu_precheck, preload=True),
    ProviderRow("tensorrt", TENSORRT, _tensorrt_options,
                "pip install onnxruntime-gpu, with TensorRT's libraries", _gpu_precheck,
                helpers=(CUDA,), preload=True),
    ProviderRow("openvino", "OpenVINOExecutionProvider", _openvino_options,
                "pip install onnxruntime-openvino"),
    ProviderRow("coreml", "CoreMLExecutionProvider", install="pip install onnxruntime, on macOS"),
    ProviderRow("directml", "DmlExecutionProvider", install="pip install onnxruntime-directml, on Windows"),
    ProviderRow("rocm", "ROCMExecutionProvider", install="AMD's onnxruntime-rocm package"),
)
#: What ``--provider`` accepts: ``auto`` (see :data:`AUTO_ORDER`) and every row.
PROVIDERS: tuple[str, ...] = ("auto", *(row.name for row in PROVIDER_ROWS))
#: What ``auto`` tries, in order, before the CPU: CUDA; then OpenVINO, which ran gantool's
#: mobile generator at 1.6x the CPU provider's frame rate with the same output (71.5 dB,
#: its fp32 as the file says) on a 2-core AMD EPYC (BENCHMARKS.md, "OpenVINO").
AUTO_ORDER = ("cuda", "openvino")
_BY_NAME = {row.name: row for row in PROVIDER_ROWS}
_SHORT = {row.ort_name: row.name for row in PROVIDER_ROWS}


def provider_row(name: str) -> ProviderRow:
    """The row ``--provider name`` means (``auto``: CUDA's); KeyError for an unknown name."""
    return _BY_NAME[AUTO_ORDER[0] if name == "auto" else name]


def short_name(ort_name: str) -> str:
    """``CUDAExecutionProvider`` -> ``cuda``; an unknown provider keeps onnxruntime's name."""
    return _SHORT.get(ort_name, ort_name)


def provider_options(ort_name: str) -> dict[str, str]:
    """The options gantool gives the provider onnxruntime calls ``ort_name``."""
    row = next((r for r in PROVIDER_ROWS if r.ort_name == ort_name), None)
    return row.options() if row is not None else {}


@dataclass
class ProviderPlan:
    """The providers a session is asked for, and why the one wanted is not among them."""

    wanted: ProviderRow
    chain: list[str]
    reason: str | None = None
    preload_output: str = field(default="", repr=False)
    #: ``auto``: why the providers it tried before this one are not used.
    passed_over: list[str] = field(default_factory=list)

    @property
    def options(self) -> list[dict[str, str]]:
        return [provider_options(name) for name in self.chain]


def plan_providers(name: str, available: Sequence[str]) -> ProviderPlan:
    """What to ask onnxruntime for: the wanted provider with its helpers and the CPU when
    this package lists it and nothing known rules it out, else the CPU alone with a reason.
    ``auto``: the first of :data:`AUTO_ORDER` that can be tried, else CUDA's reason."""
    if name != "auto":
        return _row_plan(_BY_NAME[name], available)
    plans = [_row_plan(_BY_NAME[n], available) for n in AUTO_ORDER]
    chosen = next((p for p in plans if p.reason is None), plans[0])
    if chosen is not plans[0]:
        chosen.passed_over = [f"{_label(plans[0].wanted)} not used ({plans[0].reason})"]
    return chosen


def _row_plan(row: ProviderRow, available: Sequence[str]) -> ProviderPlan:
    if row.ort_name == CPU:
        return ProviderPlan(row, [CPU])
    if row.ort_name not in available:
        how = f" ({row.install}, and only that onnxruntime package)" if row.install else ""
        return ProviderPlan(row, [CPU], f"this onnxruntime package has no {row.ort_name}{how}")
    reason = row.precheck()
    if reason is not None:
        return ProviderPlan(row, [CPU], reason)
    return ProviderPlan(row, [row.ort_name, *(h for h in row.helpers if h in available), CPU])


def quiet_preload(ort: Any) -> str:
    """Run ``ort.preload_dlls()`` (finds CUDA/cuDNN from nvidia-* wheels or torch) without
    letting its per-library messages reach the user; return what it printed."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        with contextlib.suppress(Exception):
            ort.preload_dlls()
    return buf.getvalue()


def _missing_library(preload_output: str) -> str | None:
    for line in preload_output.splitlines():
        if line.startswith("Failed to load "):
            return line.removeprefix("Failed to load ").split(":")[0].strip()
    return None


def why_not_used(plan: ProviderPlan) -> str:
    """Why a session asked for ``plan``'s provider started on another one."""
    lib = _missing_library(plan.preload_output)
    return plan.wanted.precheck() or (
        f"{lib} could not be loaded" if lib else f"{plan.wanted.ort_name} failed to initialise")


def fallback_line(asked: str, plan: ProviderPlan, used: str) -> str | None:
    """The one line a session that runs elsewhere than asked prints (None: it runs there)."""
    why = list(plan.passed_over)
    if plan.reason is not None:
        label = _label(plan.wanted) if asked == "auto" else f"--provider {asked}"
        why.append(f"{label} not used ({plan.reason})")
    return f"{'; '.join(why)}; running on {_running_on(used)}." if why else None


def _label(row: ProviderRow) -> str:
    return row.ort_name.removesuffix("ExecutionProvider")


def _running_on(ort_name: str) -> str:
    return "CPU" if ort_name == CPU else ort_name
