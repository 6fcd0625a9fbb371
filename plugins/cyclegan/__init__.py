"""CycleGAN models: ``cyclegan`` (ResNet generator), ``cyclegan-unet``, ``cyclegan-mobile``.

Importing this module does not import torch (``gantool --help`` stays fast): the networks
are imported by ``build`` and ``summary``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import translator

from .config import CycleGANConfig, CycleGANMobileConfig, CycleGANUNetConfig

__all__ = [
    "CycleGANConfig",
    "CycleGANMobileConfig",
    "CycleGANUNetConfig",
    "register_commands",
    "register_models",
]


def _builder(variant: str) -> Callable[[Any], Any]:
    def build(config: CycleGANConfig) -> Any:
        from .model import CycleGAN

        return CycleGAN(config, variant)

    return build


def _summarizer(variant: str) -> Callable[[Any], str]:
    def summary(config: CycleGANConfig) -> str:
        """Parameters of one generator and one discriminator, and the generator's cost."""
        import torch

        from .model import build_discriminator, build_generator, generator_name
        from .networks import count_conv_macs, count_parameters

        # On the meta device nothing is allocated or computed: instant even for UNet-256.
        with torch.device("meta"):
            gen = build_generator(config, variant)
            disc = build_discriminator(config)
        size = config.size
        macs = count_conv_macs(gen, size, size)
        return (
            f"generator {generator_name(config, variant)}: "
            f"{count_parameters(gen) / 1e6:.3f} M parameters, "
            f"{macs / 1e9:.2f} G conv multiply-adds per {size}x{size} frame; "
            f"PatchGAN: {count_parameters(disc) / 1e6:.3f} M parameters "
            f"(two of each, one per direction)"
        )

    return summary


# The reference trains with batch 1 at 256 px.
_TRAIN_DEFAULTS = {"batch_size": 1, "size": 256, "log_every": 50, "sample_every": 500}
# Male <-> female on CelebA, one CPU budget (BENCHMARKS.md, "Faces"): a narrower generator
# takes 2.5x the steps in the same time, without the identity loss it strays further from
# a copy of its input, and resize upsampling leaves no checkerboard texture for the judge
# to read (0.70 / 0.69 read as the target gender, against 0.55 / 0.46 with transposed convs).
_FACE_DEFAULTS = {"ngf": 32, "lambda_identity": 0.0, "upsample": "resize"}


@translator.hookimpl
def register_models(register: Callable[[translator.ModelSpec], None]) -> None:
    register(
        translator.ModelSpec(
            name="cyclegan",
            kind="translation",
            description="CycleGAN (Zhu et al. 2017): ResNet generators, 70x70 PatchGANs, "
            "unpaired A<->B translation.",
            config=CycleGANConfig,
            build=_builder("resnet"),
            augment="crop-flip",
            train_defaults=_TRAIN_DEFAULTS,
            face_defaults=_FACE_DEFAULTS,
            summary=_summarizer("resnet"),
        )
    )
    register(
        translator.ModelSpec(
            name="cyclegan-unet",
            kind="translation",
            description="CycleGAN with U-Net generators (UNet-256 / UNet-128 by size).",
            config=CycleGANUNetConfig,
            build=_builder("unet"),
            augment="crop-flip",
            train_defaults=_TRAIN_DEFAULTS,
            summary=_summarizer("unet"),
        )
    )
    register(
        translator.ModelSpec(
            name="cyclegan-mobile",
            kind="translation",
            description="CycleGAN with a light generator (depthwise-separable residual "
            "blocks, ~2 G multiply-adds at 256 px) for live video on a CPU.",
            config=CycleGANMobileConfig,
            build=_builder("mobile"),
            augment="crop-flip",
            train_defaults=_TRAIN_DEFAULTS,
            summary=_summarizer("mobile"),
        )
    )


@translator.hookimpl
def register_commands(cli: Any) -> None:
    """``gantool import reference``: the reference CycleGAN's published checkpoints."""
    from .commands import add_commands

    add_commands(cli)
