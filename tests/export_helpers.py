"""Tiny trained runs for export tests: every registered model, 2 steps at 32 px, cached.

Import the ``export_runs`` fixture into a test module (``from export_helpers import
export_runs``); ``export_runs(name)`` trains that model once per test session and returns
its run folder.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

SIZE = 32


def model_names() -> list[str]:
    """Every registered model, for parametrizing (none skipped)."""
    from translator.registry import list_models

    return [spec.name for spec in list_models()]


def small_config(spec) -> object:
    """Small widths and depths where the config has such fields (see translator.testing)."""
    from translator.testing import small_config as shrink

    return shrink(spec, SIZE)


def train_run(name: str, out: Path) -> Path:
    """Train model ``name`` for 2 steps into ``out`` and return the run folder."""
    from translator.config import TrainConfig
    from translator.registry import get_registry
    from translator.training import train

    spec = get_registry().model(name)
    config = TrainConfig(model=name, data="demo", size=SIZE, steps=2, batch_size=2, out=str(out),
                         log_every=1, sample_every=100, checkpoint_every=100, workers=0,
                         device="cpu")
    train(config, small_config(spec), progress=False)
    return out


@pytest.fixture(scope="session")
def export_runs(tmp_path_factory) -> Callable[[str], Path]:
    cache: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in cache:
            cache[name] = train_run(name, tmp_path_factory.mktemp("runs") / name)
        return cache[name]

    return get
