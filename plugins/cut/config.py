"""Configuration of the CUT models. Torch-free: ``gantool --help`` imports this module.

Every field becomes a ``gantool train MODEL`` flag (``lambda_nce`` -> ``--lambda-nce``).
Defaults are those of the reference implementation (taesungp/contrastive-unpaired-translation)
unless a field's help says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from translator import GantoolError

GAN_LOSSES = ["lsgan", "vanilla", "hinge"]
_BETA = {"min": 0.0, "max": 1.0, "max_open": True}


def _nce_weight(default: float) -> Any:
    return field(default=default, metadata={"help": "Weight of the PatchNCE loss (0: off).",
                                            "min": 0.0})


def _identity_term(default: bool) -> Any:
    return field(default=default, metadata={
        "help": "Also hold the translation of a target image to PatchNCE against that image "
                "(the identity term; CUT has it, FastCUT not)."})


@dataclass
class CUTConfig:
    """CUT: PatchNCE between input and translation, and between a target image and its
    translation (the identity term)."""

    size: int = field(
        default=256,
        metadata={"help": "Training image size (set by the loop from --size); picks depths."},
    )
    generator: str = field(
        default="resnet",
        metadata={"help": "Generator family: resnet (CycleGAN's) or mobile (depthwise-separable "
                  "residual blocks, for live video on a CPU).", "choices": ["resnet", "mobile"]},
    )
    blocks: int = field(
        default=0,
        metadata={"help": "Residual blocks in the generator; 0: 9 above 128 px, 6 at 128 px "
                  "or below.", "min": 0},
    )
    ngf: int = field(
        default=0,
        metadata={"help": "Filters in the generator's first layer; 0: the family's own "
                  "(64 resnet, 16 mobile).", "min": 0},
    )
    upsample: str = field(
        default="transpose",
        metadata={"help": "How the generator doubles its resolution: transpose or resize "
                  "(nearest x2, then a 3x3 convolution).", "choices": ["transpose", "resize"]},
    )
    ndf: int = field(default=64, metadata={"help": "Filters in the discriminator's first layer.",
                                           "min": 1})
    d_layers: int = field(
        default=3, metadata={"help": "Strided layers of the PatchGAN (3: 70x70 patches).",
                             "min": 1}
    )
    gan_loss: str = field(
        default="lsgan", metadata={"help": "Adversarial loss.", "choices": GAN_LOSSES}
    )
    lambda_gan: float = field(
        default=1.0, metadata={"help": "Weight of the adversarial loss.", "min": 0.0}
    )
    lambda_nce: float = _nce_weight(1.0)
    nce_idt: bool = _identity_term(True)
    nce_layers: str = field(
        default="0,4,8,12,16",
        metadata={"help": "Indices of the generator's layers whose features PatchNCE compares; "
                  "those beyond its encoder (the layers before the first upsampling) are "
                  "left out."},
    )
    num_patches: int = field(
        default=256, metadata={"help": "Locations sampled per layer and image.", "min": 1}
    )
    nce_t: float = field(
        default=0.07, metadata={"help": "Temperature of the PatchNCE softmax.", "min": 0.0,
                                "min_open": True}
    )
    head_units: int = field(
        default=256, metadata={"help": "Width of the two-layer projection head per layer.",
                               "min": 1}
    )
    flip_equivariance: bool = field(
        default=False,
        metadata={"help": "Mirror the generator's input on half of the steps and compare its "
                  "features mirrored back (the reference's FastCUT does). Off by default: "
                  "the model does not see the data set's flip rule, and a mirrored digit or "
                  "text means something else."},
    )
    lr: float = field(default=2e-4, metadata={"help": "Adam learning rate.", "min": 0.0,
                                              "min_open": True})
    beta1: float = field(default=0.5, metadata={"help": "Adam beta1.", **_BETA})
    beta2: float = field(default=0.999, metadata={"help": "Adam beta2.", **_BETA})
    decay_start: float = field(
        default=0.5,
        metadata={"help": "Fraction of the steps at constant learning rate; it then decays "
                  "linearly to zero.", "min": 0.0, "max": 1.0},
    )
    init_std: float = field(
        default=0.02, metadata={"help": "Standard deviation of the normal weight init.",
                                "min": 0.0, "min_open": True}
    )


@dataclass
class FastCUTConfig(CUTConfig):
    """FastCUT: no identity term, a heavier PatchNCE weight."""

    lambda_nce: float = _nce_weight(10.0)
    nce_idt: bool = _identity_term(False)


def resolve_blocks(config: CUTConfig) -> int:
    """Residual blocks: ``config.blocks``, or the reference's choice for the image size."""
    if config.blocks > 0:
        return config.blocks
    return 6 if config.size <= 128 else 9


def parse_layers(text: str) -> tuple[int, ...]:
    """``"0,4,8"`` -> ``(0, 4, 8)``, sorted, without repeats."""
    try:
        layers = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise GantoolError(f"--nce-layers takes comma-separated layer indices, not {text!r}") from None
    if not layers or layers[0] < 0:
        raise GantoolError(f"--nce-layers takes indices of 0 or more, not {text!r}")
    return tuple(layers)
