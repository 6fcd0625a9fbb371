"""Which augmentation a run uses, resolved once from the model, the data and the flags.

The resolved values replace ``preprocess``, ``flip`` and ``diffaug`` in the run's
configuration before ``config.json`` is written, so a resumed run reads them back as they
were and never re-decides. Configurations written before these fields existed hold none of
them and are resolved by the same rules.
"""

from __future__ import annotations

import dataclasses

from ..config import TrainConfig
from ..data import ImageList
from ..data.datasets import find_dataset
from ..data.pipeline import Augmentation
from ..specs import ModelSpec
from .diffaugment import resolve_policy


def choose_augmentation(
    train: TrainConfig, spec: ModelSpec, domains: dict[str, ImageList]
) -> tuple[TrainConfig, Augmentation, str]:
    """``train`` with augmentation fields resolved, the data augmentation, and a log line."""
    default = Augmentation.of(spec.augment)
    dataset, _ = find_dataset(train.data)
    flip, why = train.flip, "as asked"
    if flip is None:
        flip, why = default.flip, f"{spec.name}'s default"
        if dataset.flip_changes_meaning:
            flip, why = False, f"{dataset.name}: a mirrored image means something else"
    data_aug = Augmentation(train.preprocess or default.preprocess, flip)
    largest = max(len(d) for d in domains.values())
    policy, policy_why = resolve_policy(train.diffaug, spec.kind, largest)
    resolved = dataclasses.replace(train, preprocess=data_aug.preprocess, flip=flip,
                                   diffaug=policy)
    line = f"augmentation: {data_aug.describe()} ({why}); DiffAugment {policy} ({policy_why})"
    return resolved, data_aug, line
