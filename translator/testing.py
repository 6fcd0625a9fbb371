"""The model contract, as one call a plugin's own test suite can make.

::

    from translator.testing import check_model

    def test_my_gan_keeps_the_gantool_contract(tmp_path):
        check_model("my-gan", tmp_path)   # or check_model("my-gan"): a temporary folder

:func:`check_model` builds the registered model at a tiny size, trains it two steps on the
CPU, checks that a run stopped after one step and resumed ends bit-for-bit where an
uninterrupted one does, exports every generator to ONNX (the exporter verifies each file
against PyTorch) and runs every file through gantool's runtime: the frame pipeline for
translation models, the sampler for generation models. A broken promise raises
:class:`ContractError` (an ``AssertionError``, so test runners report it as a failure)
naming the model and the step. It takes seconds per model at the default sizes.

This module imports torch and onnxruntime; import it from tests, not from a plugin.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import math
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .config import TrainConfig
from .registry import get_registry
from .specs import ExportRequest, ModelSpec
from .training.checkpoint import find_checkpoint, load_into, load_weights
from .training.runs import load_model

#: Config fields shrunk for the check when a model's config has them (widths, depths,
#: noise length); every other field keeps its default, so a plugin needs nothing special.
SMALL_OPTIONS: dict[str, Any] = {"ngf": 8, "ndf": 8, "width": 16, "blocks": 1, "d_layers": 2,
                                 "latent_dim": 16}
GENERATOR_NAMES = {"generation": {"generator"}, "translation": {"a2b", "b2a"}}


class ContractError(AssertionError):
    """A registered model breaks a promise that gantool's loop, exporter or runtime relies on."""


@dataclass
class ContractReport:
    """What :func:`check_model` ran, for a test that wants to look further."""

    model: str
    run_dir: Path
    losses: dict[str, float]
    exported: list[Path] = field(default_factory=list)


def small_config(spec: ModelSpec, size: int, options: dict[str, Any] | None = None) -> Any:
    """The model's config with :data:`SMALL_OPTIONS` applied where the fields exist, then
    ``options`` (which win), and ``size``."""
    names = {f.name for f in dataclasses.fields(spec.config)}
    values = {k: v for k, v in SMALL_OPTIONS.items() if k in names}
    values.update(options or {})
    if "size" in names:
        values["size"] = size
    return spec.config(**values)


def check_model(name: str, workdir: str | Path | None = None, *, size: int = 32,
                data: str = "demo", domains: tuple[str, str] | None = None,
                options: dict[str, Any] | None = None) -> ContractReport:
    """Check the registered model ``name`` end to end; see the module docstring.

    ``workdir`` receives the runs and exported files (without it, a temporary folder that
    is removed afterwards). ``data`` (a built-in set or a folder) and ``domains``
    (``--domain-a``/``--domain-b``) choose the training images; ``options`` overrides
    fields of the model's config (after :data:`SMALL_OPTIONS`).
    """
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix=f"gantool-check-{name}-") as tmp:
            return check_model(name, tmp, size=size, data=data, domains=domains, options=options)
    workdir = Path(workdir)
    spec = get_registry().model(name)
    _check_spec(spec)
    with _step(name, "building its config"):
        config = small_config(spec, size, options)
    domain_a, domain_b = domains or (None, None)
    train_cfg = TrainConfig(model=name, data=data, domain_a=domain_a, domain_b=domain_b, size=size,
                            steps=2, batch_size=2, log_every=1, sample_every=2,
                            checkpoint_every=1, keep_last=2, workers=0, device="cpu")
    # Leave the caller's random streams as they were: the loop seeds the global ones.
    with torch.random.fork_rng(devices=[]):
        straight, losses = _train_straight(spec, config, train_cfg, workdir / "straight")
        _train_interrupted_and_resume(name, config, train_cfg, workdir / "resumed", straight)
    report = ContractReport(name, straight, losses)
    report.exported = _export_every_generator(spec, straight, workdir / "export")
    for path in report.exported:
        _run_in_runtime(spec, path, workdir)
    return report


def _check_spec(spec: ModelSpec) -> None:
    shared = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(spec.train_defaults) - shared)
    if unknown:
        raise ContractError(f"{spec.name}: train_defaults names no training flag: {', '.join(unknown)}")
    own = {f.name for f in dataclasses.fields(spec.config)}
    unknown = sorted(set(spec.face_defaults) - shared - own)
    if unknown:
        raise ContractError(f"{spec.name}: face_defaults names no flag: {', '.join(unknown)}")
    missing = [f.name for f in dataclasses.fields(spec.config)
               if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ContractError(f"{spec.name}: config fields without a default (every field becomes "
                            f"an optional flag): {', '.join(missing)}")


@contextlib.contextmanager
def _step(model: str, doing: str) -> Iterator[None]:
    """Turn any error into a ContractError that says which model failed doing what."""
    try:
        yield
    except ContractError:
        raise
    except Exception as exc:
        raise ContractError(f"{model} failed while {doing}: {type(exc).__name__}: {exc}") from exc


def _train_straight(spec: ModelSpec, config: Any, train_cfg: TrainConfig,
                    out: Path) -> tuple[Path, dict[str, float]]:
    from .training import train

    with _step(spec.name, "building the model"):
        torch.manual_seed(train_cfg.seed)  # as the loop does, so this is its initial model
        initial = spec.build(config)
        initial.eval()
    with _step(spec.name, "training two steps"):
        result = train(dataclasses.replace(train_cfg, out=str(out)), config, progress=False)
    if result.steps != 2:
        raise ContractError(f"{spec.name}: trained {result.steps} steps, not 2")
    bad = {k: v for k, v in result.last_losses.items() if not math.isfinite(v)}
    if not result.last_losses or bad:
        raise ContractError(f"{spec.name}: train_step must return finite losses, got "
                            f"{result.last_losses}")
    if not (out / "samples" / "step-0000002.png").is_file():
        raise ContractError(f"{spec.name}: no sample grid after training (fixed_inputs/sample_grid)")
    _check_learning(spec, initial, out)
    return out, result.last_losses


def _check_learning(spec: ModelSpec, initial: Any, run: Path) -> None:
    """Training must change what every generator makes from the same input."""
    trained = spec.build(initial.config)
    folder = find_checkpoint(run / "checkpoints")
    load_into(trained.nets, load_weights(folder), folder)
    trained.eval()
    before, after = initial.generators(), trained.generators()
    expected = GENERATOR_NAMES[spec.kind]
    if not set(after) <= expected or not set(after):
        raise ContractError(f"{spec.name}: generators() of a {spec.kind} model must use the names "
                            f"{', '.join(sorted(expected))}, got {', '.join(after) or 'none'}")
    for gen_name, gen in after.items():
        if gen.kind != spec.kind:
            raise ContractError(f"{spec.name}: generator '{gen_name}' is {gen.kind}, the spec says "
                                f"{spec.kind}")
        x = gen.example_input(2, int(getattr(initial.config, "size", 32)))
        with torch.no_grad():
            change = (after[gen_name].module(x) - before[gen_name].module(x)).abs().max().item()
        if not change > 0:
            raise ContractError(f"{spec.name}: two training steps left generator '{gen_name}' "
                                "unchanged (does train_step step its optimizer?)")


def _train_interrupted_and_resume(name: str, config: Any, train_cfg: TrainConfig, out: Path,
                                  straight: Path) -> None:
    from .training import train

    with _step(name, "training one step, then resuming"):
        train(dataclasses.replace(train_cfg, out=str(out)), config, progress=False, stop_after=1)
        train(TrainConfig(), resume=out, progress=False)
    a = load_weights(find_checkpoint(straight / "checkpoints"))
    b = load_weights(find_checkpoint(out / "checkpoints"))
    differ = sorted(k for k in a if k not in b or not torch.equal(a[k], b[k]))
    if differ or a.keys() != b.keys():
        raise ContractError(
            f"{name}: a run resumed after step 1 ends with other weights than one that never "
            f"stopped ({', '.join(differ[:4]) or 'other tensors'}); extra_state() / "
            "load_extra_state() must carry everything the step depends on")
    if _loss_rows(straight) != _loss_rows(out):
        raise ContractError(f"{name}: a resumed run logs other losses than one that never stopped")


def _loss_rows(run: Path) -> list[dict[str, str]]:
    with open(run / "logs" / "losses.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _export_every_generator(spec: ModelSpec, run: Path, out: Path) -> list[Path]:
    exporter = get_registry().exporter("onnx")
    with _step(spec.name, "exporting to ONNX"):
        paths = exporter.export(ExportRequest(run_dir=run, output=out, options={"log": None}))
    # One file per direction the model has: a one-way model (a2b only) exports one.
    with torch.random.fork_rng(devices=[]):  # building draws weights from the global stream
        wanted = load_model(run)[0].generators()
    if spec.kind == "translation" and len(paths) != len(wanted):
        raise ContractError(f"{spec.name}: exported {len(paths)} file(s), expected one per "
                            f"direction ({', '.join(sorted(wanted))})")
    return paths


def _run_in_runtime(spec: ModelSpec, path: Path, workdir: Path) -> None:
    from .runtime.session import ModelSession

    with _step(spec.name, f"loading {path.name} in the runtime"):
        session = ModelSession(path, "cpu", log=lambda _line: None)
    info = session.info
    if (info.kind, info.model) != (spec.kind, spec.name):
        raise ContractError(f"{path.name} describes itself as {info.kind} model {info.model}")
    if spec.kind == "translation":
        _translate_a_frame(spec, session)
    else:
        _sample_a_grid(spec, path, workdir)


def _translate_a_frame(spec: ModelSpec, session: Any) -> None:
    from .runtime.pipeline import FramePipeline

    # Odd, non-square sides: the pipeline must round them to the size multiple and back.
    frame = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    with _step(spec.name, f"translating a 37x53 frame with {session.path.name}"):
        (out,) = FramePipeline(session).translate([frame])
    if out.shape != frame.shape or out.dtype != np.uint8:
        raise ContractError(f"{spec.name}: the runtime turned a {frame.shape} frame into "
                            f"{out.shape} {out.dtype}")


def _sample_a_grid(spec: ModelSpec, path: Path, workdir: Path) -> None:
    from PIL import Image

    from .runtime.generate import sample_grid

    with _step(spec.name, f"sampling from {path.name}"):
        grid = sample_grid(path, 4, workdir / f"{path.stem}-samples.png", provider="cpu",
                           log=lambda _line: None)
    width, height = Image.open(grid).size
    if min(width, height) < 8:
        raise ContractError(f"{spec.name}: the sampled grid is {width}x{height} pixels")


__all__ = ["SMALL_OPTIONS", "ContractError", "ContractReport", "check_model", "small_config"]
