"""``translator.plugins.cut``: contrastive unpaired translation, one direction per run:
``cut`` and ``fastcut``.

Registration only: importing this module does not import torch (``gantool --help`` stays
fast); the networks are imported when a model is built or summarised.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import translator

from .config import CUTConfig, FastCUTConfig

__all__ = ["CUTConfig", "FastCUTConfig", "register_models"]

#: The reference trains with batch 1 at 256 px.
TRAIN_DEFAULTS: Mapping[str, Any] = {"batch_size": 1, "size": 256, "log_every": 50,
                                     "sample_every": 500}

#: (name, config, description): one registered model each.
MODELS: tuple[tuple[str, type[CUTConfig], str], ...] = (
    ("cut", CUTConfig,
     "CUT (Park et al. 2020): one generator, one PatchGAN, PatchNCE with an identity term; "
     "A->B only."),
    ("fastcut", FastCUTConfig,
     "FastCUT: CUT without the identity term (one image per step through the generator) "
     "and a heavier PatchNCE; A->B only."),
)


def build(config: CUTConfig) -> Any:
    from .model import CUT

    return CUT(config)


def summary(config: CUTConfig) -> str:
    """Parameters of the generator, discriminator and head, and the generator's cost."""
    import torch
    from translator.plugins.cyclegan.networks import count_conv_macs, count_parameters

    from .model import architecture, build_discriminator, build_generator, build_head

    # On the meta device nothing is allocated or computed.
    with torch.device("meta"):
        gen = build_generator(config)
        disc, head = build_discriminator(config), build_head(config, gen)
    size = config.size
    macs = count_conv_macs(gen, size, size)
    return (f"generator {architecture(config)}: {count_parameters(gen) / 1e6:.3f} M parameters, "
            f"{macs / 1e9:.2f} G conv multiply-adds per {size}x{size} frame; "
            f"PatchGAN: {count_parameters(disc) / 1e6:.3f} M parameters; "
            f"PatchNCE head: {count_parameters(head) / 1e6:.3f} M parameters (one direction)")


@translator.hookimpl
def register_models(register: Callable[[translator.ModelSpec], None]) -> None:
    """One model per row of :data:`MODELS`."""
    for name, config, description in MODELS:
        register(translator.ModelSpec(
            name=name, kind="translation", description=description, config=config,
            build=build, augment="crop-flip", train_defaults=dict(TRAIN_DEFAULTS),
            summary=summary))
