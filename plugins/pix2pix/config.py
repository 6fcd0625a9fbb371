"""Configuration of the pix2pix model. Torch-free: ``gantool --help`` imports this module.

Every field becomes a ``gantool train pix2pix`` flag (``lambda_l1`` -> ``--lambda-l1``).
Defaults are the reference's (junyanz/pytorch-CycleGAN-and-pix2pix, ``--model pix2pix``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from translator import GantoolError

_BETA = {"min": 0.0, "max": 1.0, "max_open": True}


@dataclass
class Pix2PixConfig:
    """A U-Net generator with batch norm and dropout, a conditional PatchGAN, L1 to the target."""

    size: int = field(
        default=256,
        metadata={"help": "Training image size (set by the loop from --size); picks the depth."},
    )
    downs: int = field(
        default=0,
        metadata={"help": "U-Net downsamplings (>= 5); 0: the deepest that divides --size, at "
                  "most 8 (UNet-256 at 256 px). H and W must divide by 2**downs.", "min": 0},
    )
    ngf: int = field(default=64, metadata={"help": "Filters in the generator's first layer.",
                                           "min": 1})
    ndf: int = field(default=64, metadata={"help": "Filters in the discriminator's first layer.",
                                           "min": 1})
    d_layers: int = field(
        default=3, metadata={"help": "Strided layers of the PatchGAN (3: 70x70 patches).",
                             "min": 1})
    dropout: bool = field(
        default=True,
        metadata={"help": "Dropout (0.5) in the generator's inner levels while training, the "
                  "reference's noise; off in evaluation and export."},
    )
    gan_loss: str = field(
        default="vanilla",
        metadata={"help": "Adversarial loss.", "choices": ["vanilla", "lsgan", "hinge"]},
    )
    lambda_l1: float = field(
        default=100.0, metadata={"help": "Weight of the L1 distance to the target.", "min": 0.0})
    lambda_gan: float = field(
        default=1.0, metadata={"help": "Weight of the adversarial loss (0: an L1-only U-Net).",
                               "min": 0.0})
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
                                "min": 0.0, "min_open": True})


def unet_depth(config: Pix2PixConfig) -> int:
    """``config.downs``, or the deepest U-Net that divides the size, at most 8."""
    if config.downs > 0:
        if config.downs < 5:
            raise GantoolError(f"--downs must be at least 5, got {config.downs}")
        return config.downs
    downs = 8
    while downs > 5 and config.size % (2**downs) != 0:
        downs -= 1
    return downs
