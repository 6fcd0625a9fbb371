"""Run folders: creating them, describing them in ``config.json``, loading them back."""

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

from . import __version__
from .checkpoint import find_checkpoint, load_inference_weights, load_into, read_json
from .config import TrainConfig, check_ranges, config_from_dict, to_dict
from .data import ImageList
from .errors import GantoolError
from .registry import get_registry
from .safe_write import process_alive, safe_component, write_text_atomic
from .specs import DataRequest, DatasetSpec, Kind, ModelSpec, Split

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


def domain_keys(kind: str) -> list[str]:
    """Batch keys of a model kind: ``images`` or ``a`` and ``b``."""
    return ["a", "b"] if kind == "translation" else ["images"]


def data_request(train: TrainConfig, kind: Kind, split: Split = "train") -> DataRequest:
    domains: tuple[str, ...] = ()
    if kind == "translation":
        if (train.domain_a is None) != (train.domain_b is None):
            raise GantoolError("give both --domain-a and --domain-b, or neither")
        if train.domain_a and train.domain_b is not None:
            domains = (train.domain_a, train.domain_b)
    elif train.domain_a:
        domains = (train.domain_a,)
    return DataRequest(kind=kind, domains=domains, split=split)


def find_dataset(data: str) -> tuple[DatasetSpec, Path | None]:
    """The data set ``--data`` names: a built-in set (no path) or the format of a folder."""
    registry = get_registry()
    named = {n: s for n, s in registry.datasets.items() if s.detect is None}
    if data in named:
        return named[data], None
    path = Path(data).expanduser()
    if not path.exists():
        known = ", ".join(sorted(named)) or "none registered; see gantool plugins"
        raise GantoolError(f"--data {data}: no such folder or built-in set ({known})")
    if not path.is_dir():
        raise GantoolError(f"--data {data} is a file; give a folder of images")
    formats = sorted((s for s in registry.datasets.values() if s.detect is not None),
                     key=lambda s: s.priority)
    for spec in formats:
        try:
            found = spec.detect is not None and spec.detect(path)
        except PermissionError as exc:
            raise GantoolError(f"--data {data}: cannot read {exc.filename or 'a file'} "
                               "(permission denied)") from None
        if found:
            return spec, path
    raise GantoolError(f"--data {data}: no data format recognises this folder")


def open_data(train: TrainConfig, kind: Kind, split: Split = "train",
              purpose: str = "train it further") -> dict[str, ImageList]:
    """Resolve ``--data`` (a built-in name or a folder) to image lists keyed for batches.
    ``purpose`` says, in the error for a run without data, what the images were for."""
    if not train.data:
        # A run made from imported weights without --data has no images at all.
        raise GantoolError(f"this run names no data (an import without --data), so there "
                           f"are no images to {purpose}; import it again with --data DIR")
    spec, path = find_dataset(train.data)
    try:
        lists = spec.open(path, data_request(train, kind, split))
    except PermissionError as exc:  # e.g. --data /proc: a folder with entries we may not read
        raise GantoolError(f"--data {train.data}: cannot read {exc.filename or 'a file'} "
                           "(permission denied)") from None
    keys = domain_keys(kind)
    if len(lists) != len(keys):
        raise GantoolError(f"--data {train.data} gave {len(lists)} domain(s), need {len(keys)}")
    for lst in lists:
        if len(lst) == 0:
            raise GantoolError(f"domain '{lst.name}' has no images")
    if aligns_faces(train, spec):
        from .data.faces import aligned_list, alignment_detector
        from .data.pipeline import CROP_SCALE

        side = max(ALIGNED_SIDE, round(train.size * CROP_SCALE))
        lists = [aligned_list(lst, side, alignment_detector()) for lst in lists]
    return dict(zip(keys, lists, strict=True))


def data_defaults(spec: ModelSpec, data: str | None) -> dict[str, Any]:
    """The model's defaults that depend on the data: its ``face_defaults`` when ``data`` is
    a data set of faces, else none."""
    if not data or not spec.face_defaults:
        return {}
    dataset, _ = find_dataset(data)
    return dict(spec.face_defaults) if dataset.faces else {}


def defaults_line(spec: ModelSpec, data: str, taken: dict[str, Any]) -> str:
    """The log line that names the data-dependent defaults a run took."""
    from .config import flag_name

    dataset, _ = find_dataset(data)
    values = ", ".join(f"{flag_name(k)} {v}" for k, v in taken.items())
    return (f"defaults for faces: {values} ({spec.name}'s choice for data sets of faces, "
            f"measured on CelebA; {dataset.name} holds faces; give a flag to override)")


#: The side faces are aligned at before the batch pipeline resizes them (at least).
ALIGNED_SIDE = 256


def aligns_faces(train: TrainConfig, spec: DatasetSpec) -> bool:
    """Whether ``--align-faces`` (auto: when the data set holds faces) is on."""
    return train.align_faces == "on" or (train.align_faces == "auto" and spec.faces)


def alignment_line(train: TrainConfig) -> str | None:
    """The log line that says whether, and with which detector, faces are aligned."""
    spec, _ = find_dataset(train.data) if train.data else (None, None)
    if spec is None or not aligns_faces(train, spec):
        return None
    from .data.faces import alignment_detector

    name = alignment_detector()
    why = "--align-faces on" if train.align_faces == "on" else f"{spec.name} holds faces"
    hint = "" if name == "dlib" else ' (estimated from boxes; pip install "gantool[faces]" for landmarks)'
    return f"faces aligned to gantool's template with the {name} detector{hint} ({why})"


def describe_data(domains: dict[str, ImageList]) -> dict[str, Any]:
    return {key: {"name": lst.name, "images": len(lst), "source": lst.description}
            for key, lst in domains.items()}


def write_run_config(run_dir: Path, spec: ModelSpec, train: TrainConfig, model_config: Any,
                     data: dict[str, Any], untrained: dict[str, str] | None = None) -> None:
    """``config.json``; ``untrained`` names the generators (with why) that the step-0
    checkpoint holds freshly initialised, as an import of one generator leaves them."""
    from .manager import get_plugin_manager

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
