"""Run folders: their names and lock, ``config.json`` both ways, and a run's model loaded
back for inference."""

from __future__ import annotations

import json
import math
import os
import time
import typing
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import __version__
from ..config import TrainConfig, check_ranges, config_from_dict, to_dict
from ..errors import GantoolError
from ..imaging import plot_losses
from ..registry import get_registry
from ..safe_write import process_alive, remove_stale_temporaries, safe_component, write_text_atomic
from ..specs import ModelSpec
from .checkpoint import find_checkpoint, load_inference_weights, load_into, read_json

CONFIG = "config.json"
#: Names the process that trains the run folder now (its pid), while it does.
LOCK = "train.lock"


def default_run_dir(model: str, root: Path = Path("runs")) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    model = safe_component(model, fallback="run")  # a plugin's name, kept to one component
    path = root / f"{model}-{stamp}"
    n = 1
    while path.exists():
        n += 1
        path = root / f"{model}-{stamp}-{n}"
    return path


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Own ``run_dir`` for one training: a second process (a second start with the same
    ``--out``, a ``--resume`` of a running run) is refused instead of writing the same
    log rows and checkpoints. A lock whose process is gone (killed) is taken over."""
    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK
    _take_lock(path)
    try:
        yield
    finally:
        if _lock_owner(path) == os.getpid():
            path.unlink(missing_ok=True)
        if created and not any(run_dir.iterdir()):
            run_dir.rmdir()  # set-up failed before writing anything: leave no empty folder


def _take_lock(path: Path) -> None:
    for _ in range(3):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            owner = _lock_owner(path)
            if owner is not None and process_alive(owner):
                raise GantoolError(f"{path.parent} is being trained by process {owner}; a run "
                                   "folder takes one training at a time (wait for it, or stop "
                                   "it and --resume)") from None
            path.unlink(missing_ok=True)  # its process is gone: the lock is stale
            continue
        with os.fdopen(fd, "w") as fh:
            fh.write(f"{os.getpid()}\n")
        # Two processes taking over one stale lock: the later may have removed the earlier's
        # fresh one; only the process the file names goes on, the other looks again.
        if _lock_owner(path) == os.getpid():
            return
    raise GantoolError(f"{path.parent} is being started by another process at the same time")


def _lock_owner(path: Path) -> int | None:
    """The pid a lock file names; None for an unreadable or garbled one (left by a kill
    between creating and writing it)."""
    try:
        text = path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


def write_run_config(run_dir: Path, spec: ModelSpec, train: TrainConfig, model_config: Any,
                     data: dict[str, Any], untrained: dict[str, str] | None = None) -> None:
    """``config.json``; ``untrained`` names the generators (with why) that the step-0
    checkpoint holds freshly initialised, as an import of one generator leaves them."""
    from ..manager import get_plugin_manager

    info = get_plugin_manager().info.get(spec.plugin)
    payload = {
        "model": spec.name,
        "kind": spec.kind,
        "plugin": spec.plugin,
        "plugin_version": info.version if info else None,
        "gantool_version": __version__,
        "train": to_dict(train),
        "model_config": to_dict(model_config),
        "data": data,
    }
    if untrained:
        payload["untrained"] = {"step": 0, "generators": dict(untrained)}
    write_text_atomic(run_dir / CONFIG, json.dumps(payload, indent=2) + "\n")


@dataclass
class RunConfig:
    """A run folder's ``config.json``, resolved against the installed plugins."""

    run_dir: Path
    spec: ModelSpec
    train: TrainConfig
    model_config: Any
    raw: dict[str, Any]

    def untrained(self, step: int) -> dict[str, str]:
        """The generators that the checkpoint at ``step`` holds untrained, each with why;
        training past the step the import wrote trains them all."""
        mark = self.raw.get("untrained")
        if not isinstance(mark, dict) or step > int(mark.get("step", 0)):
            return {}
        return {str(k): str(v) for k, v in dict(mark.get("generators", {})).items()}

    @property
    def domain_names(self) -> dict[str, str]:
        return {k: v.get("name", k) for k, v in self.raw.get("data", {}).items()}


def read_run_config(run_dir: Path) -> RunConfig:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise GantoolError(f"{run_dir} is not a run folder (no such directory)")
    if not (run_dir / CONFIG).is_file():
        raise GantoolError(f"{run_dir} is not a run folder (no {CONFIG})")
    where = run_dir / CONFIG
    raw = read_json(where)
    if not isinstance(raw, dict):
        raise GantoolError(f"{where} holds {type(raw).__name__}, not an object describing a run")
    if not isinstance(raw.get("model"), str):
        raise GantoolError(f"{where} lacks the model's name ('model')")
    spec = get_registry().model(raw["model"])
    for key in ("train", "model_config", "data"):
        if not isinstance(raw.get(key, {}), dict):
            raise GantoolError(f"{where}: '{key}' must be an object, not {type(raw[key]).__name__}")
    train = _typed_config(TrainConfig, raw.get("train", {}), where, "train")
    model_config = _typed_config(spec.config, raw.get("model_config", {}), where, "model_config")
    check_train_config(train, str(where), model_config)
    return RunConfig(run_dir, spec, train, model_config, raw)


def _typed_config(config_cls: type, values: dict[str, Any], where: Path, section: str) -> Any:
    """A config dataclass from JSON values whose types match the fields' declared types."""
    hints = typing.get_type_hints(config_cls)
    for name, value in values.items():
        if name in hints and not _fits(value, hints[name]):
            raise GantoolError(f"{where}: {section}.{name} = {json.dumps(value)[:40]} "
                               f"is not a valid {_type_name(hints[name])}")
    try:
        return config_from_dict(config_cls, values, strict=False)
    except (TypeError, ValueError) as exc:
        raise GantoolError(f"{where}: {section} does not fit: {exc}") from None


def _fits(value: Any, tp: Any) -> bool:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Literal:
        return value in args
    if args and type(None) in args:  # X | None
        return value is None or any(_fits(value, a) for a in args if a is not type(None))
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if tp is str:
        return isinstance(value, str)
    return True  # containers and plugin-specific types: left to the plugin


def _type_name(tp: Any) -> str:
    return " or ".join(getattr(a, "__name__", str(a)) for a in (typing.get_args(tp) or (tp,)))


#: The most pixels one training batch may hold (256 images at 1024 px).
MAX_BATCH_PIXELS = 256 * 1024 * 1024


def check_train_config(train: TrainConfig, where: str, model_config: Any = None) -> None:
    """Options a run cannot work with (out of their fields' bounds or choices), the
    training ones and the model's, as one clear error."""
    try:
        check_ranges(train)
        if model_config is not None:
            check_ranges(model_config)
    except GantoolError as exc:
        raise GantoolError(f"{where}: {exc}") from None
    pixels = train.batch_size * train.size * train.size
    if pixels > MAX_BATCH_PIXELS:
        # One batch of inputs alone would take 12 bytes a pixel; the networks many times that.
        raise GantoolError(f"{where}: --batch-size {train.batch_size} at --size {train.size} is "
                           f"{pixels:,} pixels a step, more than {MAX_BATCH_PIXELS:,} fit any "
                           "machine gantool trains on; lower one of them")


def load_model(run_dir: Path, step: int | None = None):
    """The run's model on the CPU in eval mode with the chosen checkpoint's weights
    (its generators' average where the run keeps one: ``--ema``).

    Returns ``(model, run_config, step)``.
    """
    rc = read_run_config(run_dir)
    folder = find_checkpoint(Path(run_dir) / "checkpoints", step)
    model = rc.spec.build(rc.model_config)
    load_into(model.nets, load_inference_weights(folder), folder)
    model.eval()
    return model, rc, int(folder.name.split("-")[1])


def remove_stale_files(run_dir: Path) -> None:
    """Temporaries a kill left between a write and its rename (``logs/.losses.tmp-*.png``)."""
    for sub in (".", "logs", "samples", "cache"):
        remove_stale_temporaries(run_dir / sub)


def redraw_missing_plot(run_dir: Path) -> None:
    """The loss plot of a finished run, if the end of the run did not get to draw it."""
    logs = run_dir / "logs"
    csv_path = logs / "losses.csv"
    if not (logs / "losses.png").exists() and csv_path.is_file() and csv_path.stat().st_size:
        plot_losses(csv_path, logs / "losses.png")
