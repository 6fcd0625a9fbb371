"""``--set KEY=VALUE`` variants for the learning benchmarks, split by where a key belongs."""

from __future__ import annotations

import json

from translator.config import TrainConfig, field_types


def overrides(pairs: list[str], model_config_cls: type) -> tuple[dict, dict]:
    """``key=value`` words split into TrainConfig and model config values (parsed as JSON)."""
    train_names, model_names = set(field_types(TrainConfig)), set(field_types(model_config_cls))
    train_values, model_values = {}, {}
    for pair in pairs:
        key, _, text = pair.partition("=")
        key = key.replace("-", "_")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        if key in train_names:
            train_values[key] = value
        elif key in model_names:
            model_values[key] = value
        else:
            raise SystemExit(f"Error: --set {key}: not a training or {model_config_cls.__name__} field")
    return train_values, model_values
