"""``translator.plugins.pix2pix``: pix2pix (Isola et al. 2017), paired image-to-image
translation: a U-Net generator with batch norm and dropout, a conditional 70x70 PatchGAN
that judges (input, output) pairs, and an L1 loss to the target (weight 100).

It learns from pairs of one scene (``ModelSpec.paired``): the reference's aligned folders,
``trainA/``/``trainB/`` whose files match by name, or ``digit-edges``. Importing this
module does not import torch: :mod:`.model` is imported by ``build`` and ``summary``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import translator

from .config import Pix2PixConfig, unet_depth

__all__ = ["Pix2PixConfig", "register_models"]

#: The reference trains pix2pix as it trains CycleGAN: batch 1 at 256 px.
TRAIN_DEFAULTS: dict[str, Any] = {"batch_size": 1, "size": 256, "log_every": 50,
                                  "sample_every": 500}


def build(config: Pix2PixConfig) -> Any:
    from .model import Pix2Pix

    return Pix2Pix(config)


def summary(config: Pix2PixConfig) -> str:
    """Parameters of the generator and the discriminator, and the generator's cost."""
    import torch
    from translator.plugins.cyclegan.networks import count_conv_macs, count_parameters

    from .model import build_networks

    with torch.device("meta"):  # nothing allocated or computed
        gen, disc = build_networks(config)
    size = config.size
    return (f"generator unet_{2 ** unet_depth(config)} (batch norm"
            f"{', dropout' if config.dropout else ''}): {count_parameters(gen) / 1e6:.3f} M "
            f"parameters, {count_conv_macs(gen, size, size) / 1e9:.2f} G conv multiply-adds per "
            f"{size}x{size} frame; conditional PatchGAN: {count_parameters(disc) / 1e6:.3f} M "
            "parameters")


@translator.hookimpl
def register_models(register: Callable[[translator.ModelSpec], None]) -> None:
    register(translator.ModelSpec(
        name="pix2pix", kind="translation",
        description="pix2pix (Isola et al. 2017): paired A->B translation, U-Net with batch "
        "norm and dropout, conditional 70x70 PatchGAN, L1 weight 100.",
        config=Pix2PixConfig, build=build, augment="crop-flip", summary=summary,
        train_defaults=dict(TRAIN_DEFAULTS), paired=True))
