"""Configuration of the CycleGAN models. Torch-free: ``gantool --help`` imports this module.

Every field becomes a ``gantool train MODEL`` flag (``lambda_cycle`` -> ``--lambda-cycle``).
Defaults are those of the reference implementation (junyanz/pytorch-CycleGAN-and-pix2pix).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from translator import GantoolError

GAN_LOSSES = ["lsgan", "vanilla", "wgangp", "hinge"]
_BETA = {"min": 0.0, "max": 1.0, "max_open": True}


@dataclass
class CycleGANConfig:
    """Options shared by every CycleGAN variant; the ResNet generator's own fields too."""

    size: int = field(
        default=256,
        metadata={"help": "Training image size (set by the loop from --size); picks depths."},
    )
    blocks: int = field(
        default=0,
        metadata={"help": "Residual blocks in the generator; 0: 9 above 128 px, 6 at 128 px "
                  "or below.", "min": 0},
    )
    ngf: int = field(default=64, metadata={"help": "Filters in the generator's first layer.",
                                           "min": 1})
    upsample: str = field(
        default="transpose",
        metadata={"help": "How the generator doubles its resolution: transpose (the "
                  "reference's transposed convolutions) or resize (nearest x2, then a 3x3 "
                  "convolution: no checkerboard pattern early in training).",
                  "choices": ["transpose", "resize"]},
    )
    ndf: int = field(default=64, metadata={"help": "Filters in the discriminator's first layer.",
                                           "min": 1})
    d_layers: int = field(
        default=3, metadata={"help": "Strided layers of the PatchGAN (3: 70x70 patches).",
                             "min": 1}
    )
    gan_loss: str = field(
        default="lsgan",
        metadata={"help": "Adversarial loss.", "choices": GAN_LOSSES},
    )
    lambda_cycle: float = field(
        default=10.0, metadata={"help": "Weight of the cycle-consistency L1 loss.", "min": 0.0}
    )
    cycle_noise: float = field(
        default=0.0,
        metadata={"help": "Standard deviation of Gaussian noise added to a translation before "
                  "it is translated back for the cycle loss, so that the generator cannot hide "
                  "the input in faint patterns (0: off).", "min": 0.0},
    )
    lambda_identity: float = field(
        default=0.5,
        metadata={"help": "Weight of the identity loss, relative to --lambda-cycle (0: off).",
                  "min": 0.0},
    )
    gp_weight: float = field(
        default=10.0, metadata={"help": "Gradient-penalty weight (only with --gan-loss wgangp).",
                                "min": 0.0}
    )
    r1_weight: float = field(
        default=0.0,
        metadata={"help": "Weight (gamma) of the R1 penalty on the discriminators' gradients "
                  "at real images, a regulariser for small data sets (0: off).", "min": 0.0},
    )
    pool_size: int = field(
        default=50,
        metadata={"help": "Generated images kept to train the discriminators (0: no pool).",
                  "min": 0},
    )
    lr: float = field(default=2e-4, metadata={"help": "Adam learning rate.", "min": 0.0,
                                              "min_open": True})
    # torch's Adam takes betas in [0, 1).
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
class CycleGANUNetConfig(CycleGANConfig):
    """The U-Net variant: ``downs`` replaces ``blocks``."""

    upsample: str = field(
        default="transpose",
        metadata={"help": "How the generator doubles its resolution (the U-Net: transposed "
                  "convolutions only).", "choices": ["transpose"]},
    )
    downs: int = field(
        default=0,
        metadata={"help": "U-Net downsamplings (>= 5); 0: the deepest that divides --size, at "
                  "most 8 (UNet-256 at 256 px, UNet-128 at 128 px). H and W must divide by "
                  "2**downs."},
    )


@dataclass
class CycleGANMobileConfig(CycleGANConfig):
    """The light variant: depthwise-separable residual blocks, narrow stem and head."""

    ngf: int = field(
        default=16,
        metadata={"help": "Filters in the generator's first layer (blocks use 8x as many).",
                  "min": 1},
    )


def resolve_blocks(config: CycleGANConfig) -> int:
    """Residual blocks: ``config.blocks``, or the reference's choice for the image size."""
    if config.blocks > 0:
        return config.blocks
    return 6 if config.size <= 128 else 9


def resolve_downs(config: CycleGANUNetConfig) -> int:
    """U-Net depth: ``config.downs``, or the deepest that divides the size, at most 8.

    That is UNet-256 at 256 px and UNet-128 at 128 px, as in the reference.
    """
    if config.downs > 0:
        if config.downs < 5:
            raise GantoolError(f"--downs must be at least 5, got {config.downs}")
        return config.downs
    downs = 8
    while downs > 5 and config.size % (2**downs) != 0:
        downs -= 1
    return downs
