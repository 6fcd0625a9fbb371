"""``translator.plugins.cyclegan``: CycleGAN models: ``cyclegan`` (ResNet generator),
``cyclegan-unet``, ``cyclegan-mobile``.

One row of :data:`.variants.VARIANTS` each. Importing this module does not import torch
(``gantool --help`` stays fast): the networks are imported by ``build`` and ``summary``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import translator

from .config import CycleGANConfig, CycleGANMobileConfig, CycleGANUNetConfig
from .variants import VARIANTS

__all__ = [
    "CycleGANConfig",
    "CycleGANMobileConfig",
    "CycleGANUNetConfig",
    "register_commands",
    "register_models",
]


@translator.hookimpl
def register_models(register: Callable[[translator.ModelSpec], None]) -> None:
    """One model per row of :data:`.variants.VARIANTS`."""
    for variant in VARIANTS:
        register(variant.model_spec())


@translator.hookimpl
def register_commands(cli: Any) -> None:
    """``gantool import reference``: the reference CycleGAN's published checkpoints."""
    from .commands import add_commands

    add_commands(cli)
