"""Noise-to-image GANs: DCGAN, WGAN (weight clipping) and WGAN-GP (gradient penalty).

Registration only; the networks live in :mod:`.model` and are imported when a model is
built, so listing models stays fast.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import translator

_SIZES = [32, 64, 128]


@dataclass
class DCGANConfig:
    """DCGAN (Radford et al. 2016): BatchNorm, LeakyReLU 0.2, Tanh, BCE, Adam 2e-4 b1 0.5."""

    size: int = 64
    latent_dim: int = field(default=100, metadata={"help": "length of the noise vector"})
    ngf: int = field(default=64, metadata={"help": "generator width"})
    ndf: int = field(default=64, metadata={"help": "discriminator width"})
    lr_g: float = field(default=2e-4, metadata={"help": "generator learning rate"})
    lr_d: float = field(default=2e-4, metadata={"help": "discriminator learning rate"})
    beta1: float = 0.5
    beta2: float = 0.999
    n_critic: int = field(default=1, metadata={
        "help": "discriminator steps per generator step (fixed balance)"})
    balance: Literal["fixed", "adaptive"] = field(default="fixed", metadata={
        "help": "adaptive: train whichever side is losing, judged by the discriminator's "
                "accuracy on the last batch"})
    loss: Literal["bce", "wasserstein"] = "bce"
    critic_norm: Literal["batch", "layer", "none"] = "batch"
    clip: float = field(default=0.0, metadata={"help": "critic weight clipping (0: off)"})
    gp_weight: float = field(default=0.0, metadata={"help": "gradient penalty weight (0: off)"})
    optimizer: Literal["adam", "rmsprop"] = "adam"


@dataclass
class WGANConfig(DCGANConfig):
    """WGAN (Arjovsky et al. 2017): critic without sigmoid, clipping 0.01, RMSprop 5e-5."""

    lr_g: float = 5e-5
    lr_d: float = 5e-5
    n_critic: int = 5
    loss: Literal["bce", "wasserstein"] = "wasserstein"
    clip: float = 0.01
    optimizer: Literal["adam", "rmsprop"] = "rmsprop"


@dataclass
class WGANGPConfig(DCGANConfig):
    """WGAN-GP (Gulrajani et al. 2017): penalty 10, no BatchNorm in the critic, Adam (0, 0.9).

    One critic step per generator step at 2e-4, not the paper's five at 1e-4: on CPU
    minutes it learns digits faster (BENCHMARKS.md).
    """

    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.0
    beta2: float = 0.9
    n_critic: int = 1
    loss: Literal["bce", "wasserstein"] = "wasserstein"
    critic_norm: Literal["batch", "layer", "none"] = "layer"
    gp_weight: float = 10.0


def _build(config: DCGANConfig):
    from .model import NoiseGAN

    if config.size not in _SIZES:
        raise translator.GantoolError(
            f"this model trains at {', '.join(map(str, _SIZES))} px, not {config.size}"
        )
    return NoiseGAN(config)


def _summary(config: DCGANConfig) -> str:
    from .model import count_parameters

    g, d = count_parameters(config)
    return f"at {config.size} px: generator {g / 1e6:.3f} M, critic {d / 1e6:.3f} M parameters"


_DEFAULTS = {"batch_size": 64, "size": 64, "log_every": 25}
# WGAN-GP samples from the average of its generator's weights: slightly better digits
# from 2000 steps on (BENCHMARKS.md); the others are not measured with it.
_WGAN_GP_DEFAULTS = {**_DEFAULTS, "ema": 0.999}


@translator.hookimpl
def register_models(register):
    for name, config, text, defaults in (
        ("dcgan", DCGANConfig, "DCGAN: convolutional GAN with BatchNorm and BCE loss", _DEFAULTS),
        ("wgan", WGANConfig, "WGAN: Wasserstein critic with weight clipping, RMSprop", _DEFAULTS),
        ("wgan-gp", WGANGPConfig, "WGAN-GP: Wasserstein critic with gradient penalty",
         _WGAN_GP_DEFAULTS),
    ):
        register(translator.ModelSpec(
            name=name, kind="generation", description=text, config=config, build=_build,
            summary=_summary, train_defaults=defaults,
        ))
