"""Run folders: creating them, describing them in ``config.json``, loading them back."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import __version__
from .checkpoint import find_checkpoint, load_into, load_weights, read_json
from .config import TrainConfig, config_from_dict, to_dict
from .data import ImageList
from .errors import GantoolError
from .registry import get_registry
from .specs import DataRequest, DatasetSpec, ModelSpec

CONFIG = "config.json"


def default_run_dir(model: str, root: Path = Path("runs")) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = root / f"{model}-{stamp}"
    n = 1
    while path.exists():
        n += 1
        path = root / f"{model}-{stamp}-{n}"
    return path


def domain_keys(kind: str) -> list[str]:
    """Batch keys of a model kind: ``images`` or ``a`` and ``b``."""
    return ["a", "b"] if kind == "translation" else ["images"]


def data_request(train: TrainConfig, kind: str, split: str = "train") -> DataRequest:
    if kind == "translation":
        if (train.domain_a is None) != (train.domain_b is None):
            raise GantoolError("give both --domain-a and --domain-b, or neither")
        domains = (train.domain_a, train.domain_b) if train.domain_a else ()
    else:
        domains = (train.domain_a,) if train.domain_a else ()
    return DataRequest(kind=kind, domains=domains, split=split)  # type: ignore[arg-type]


def find_dataset(data: str) -> tuple[DatasetSpec, Path | None]:
    """The data set ``--data`` names: a built-in set (no path) or the format of a folder."""
    registry = get_registry()
    named = {n: s for n, s in registry.datasets.items() if s.detect is None}
    if data in named:
        return named[data], None
    path = Path(data).expanduser()
    if not path.exists():
        known = ", ".join(sorted(named))
        raise GantoolError(f"--data {data}: no such folder or built-in set ({known})")
    if not path.is_dir():
        raise GantoolError(f"--data {data} is a file; give a folder of images")
    formats = sorted((s for s in registry.datasets.values() if s.detect is not None),
                     key=lambda s: s.priority)
    for spec in formats:
        if spec.detect(path):
            return spec, path
    raise GantoolError(f"--data {data}: no data format recognises this folder")


def open_data(train: TrainConfig, kind: str, split: str = "train") -> dict[str, ImageList]:
    """Resolve ``--data`` (a built-in name or a folder) to image lists keyed for batches."""
    spec, path = find_dataset(train.data)
    lists = spec.open(path, data_request(train, kind, split))
    keys = domain_keys(kind)
    if len(lists) != len(keys):
        raise GantoolError(f"--data {train.data} gave {len(lists)} domain(s), need {len(keys)}")
    for lst in lists:
        if len(lst) == 0:
            raise GantoolError(f"domain '{lst.name}' has no images")
    return dict(zip(keys, lists, strict=True))


def describe_data(domains: dict[str, ImageList]) -> dict[str, Any]:
    return {key: {"name": lst.name, "images": len(lst), "source": lst.description}
            for key, lst in domains.items()}


def write_run_config(run_dir: Path, spec: ModelSpec, train: TrainConfig, model_config: Any,
                     data: dict[str, Any]) -> None:
    from .checkpoint import write_text_atomic
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
    write_text_atomic(run_dir / CONFIG, json.dumps(payload, indent=2) + "\n")


@dataclass
class RunConfig:
    """A run folder's ``config.json``, resolved against the installed plugins."""

    run_dir: Path
    spec: ModelSpec
    train: TrainConfig
    model_config: Any
    raw: dict[str, Any]

    @property
    def domain_names(self) -> dict[str, str]:
        return {k: v.get("name", k) for k, v in self.raw.get("data", {}).items()}


def read_run_config(run_dir: Path) -> RunConfig:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise GantoolError(f"{run_dir} is not a run folder (no such directory)")
    if not (run_dir / CONFIG).is_file():
        raise GantoolError(f"{run_dir} is not a run folder (no {CONFIG})")
    raw = read_json(run_dir / CONFIG)
    try:
        spec = get_registry().model(raw["model"])
        train = config_from_dict(TrainConfig, raw["train"], strict=False)
        model_config = config_from_dict(spec.config, raw.get("model_config", {}), strict=False)
    except KeyError as exc:
        raise GantoolError(f"{run_dir / CONFIG} lacks {exc}") from None
    except TypeError as exc:
        raise GantoolError(f"{run_dir / CONFIG} does not fit model {raw['model']}: {exc}") from None
    return RunConfig(run_dir, spec, train, model_config, raw)


def load_model(run_dir: Path, step: int | None = None):
    """The run's model on the CPU in eval mode with the chosen checkpoint's weights.

    Returns ``(model, run_config, step)``.
    """
    rc = read_run_config(run_dir)
    folder = find_checkpoint(Path(run_dir) / "checkpoints", step)
    model = rc.spec.build(rc.model_config)
    load_into(model.nets, load_weights(folder), folder)
    model.eval()
    return model, rc, int(folder.name.split("-")[1])
