"""``translator.plugins.dcgan``: noise-to-image GANs: DCGAN, WGAN (weight clipping) and
WGAN-GP (gradient penalty).

Registration only; the networks live in :mod:`.model` and are imported when a model is
built, so listing models stays fast.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import translator

_SIZES = [32, 64, 128]


def _rate(default: float, help_text: str) -> Any:
    """A learning rate: more than 0 (subclasses change the default, keeping the bounds)."""
    return field(default=default, metadata={"help": help_text, "min": 0.0, "min_open": True})


def _at_least(lowest: float | int, default: float | int, help_text: str) -> Any:
    return field(default=default, metadata={"help": help_text, "min": lowest})


def _beta(default: float, which: str) -> Any:
    """An Adam beta: torch takes [0, 1)."""
    return field(default=default, metadata={"help": f"Adam's {which}", "min": 0.0, "max": 1.0,
                                            "max_open": True})


@dataclass
class DCGANConfig:
    """DCGAN (Radford et al. 2016): BatchNorm, LeakyReLU 0.2, Tanh, BCE, Adam 2e-4 b1 0.5."""

    size: int = 64
    latent_dim: int = field(default=100, metadata={"help": "length of the noise vector", "min": 1})
    ngf: int = field(default=64, metadata={"help": "generator width", "min": 1})
    ndf: int = field(default=64, metadata={"help": "discriminator width", "min": 1})
    lr_g: float = _rate(2e-4, "generator learning rate")
    lr_d: float = _rate(2e-4, "discriminator learning rate")
    beta1: float = _beta(0.5, "beta1")
    beta2: float = _beta(0.999, "beta2")
    n_critic: int = _at_least(1, 1, "discriminator steps per generator step (fixed balance)")
    balance: Literal["fixed", "adaptive"] = field(default="fixed", metadata={
        "help": "adaptive: train whichever side is losing, judged by the discriminator's "
                "accuracy on the last batch"})
    loss: Literal["bce", "wasserstein"] = "bce"
    critic_norm: Literal["batch", "layer", "none"] = "batch"
    clip: float = _at_least(0.0, 0.0, "critic weight clipping (0: off)")
    gp_weight: float = _at_least(0.0, 0.0, "gradient penalty weight (0: off)")
    optimizer: Literal["adam", "rmsprop"] = "adam"


@dataclass
class WGANConfig(DCGANConfig):
    """WGAN (Arjovsky et al. 2017): critic without sigmoid, clipping 0.01, RMSprop 5e-5."""

    lr_g: float = _rate(5e-5, "generator learning rate")
    lr_d: float = _rate(5e-5, "discriminator learning rate")
    n_critic: int = _at_least(1, 5, "discriminator steps per generator step (fixed balance)")
    loss: Literal["bce", "wasserstein"] = "wasserstein"
    clip: float = _at_least(0.0, 0.01, "critic weight clipping (0: off)")
    optimizer: Literal["adam", "rmsprop"] = "rmsprop"


@dataclass
class WGANGPConfig(DCGANConfig):
    """WGAN-GP (Gulrajani et al. 2017): penalty 10, no BatchNorm in the critic, Adam (0, 0.9).

    One critic step per generator step at 2e-4, not the paper's five at 1e-4: on CPU
    minutes it learns digits faster (BENCHMARKS.md).
    """

    beta1: float = _beta(0.0, "beta1")
    beta2: float = _beta(0.9, "beta2")
    loss: Literal["bce", "wasserstein"] = "wasserstein"
    critic_norm: Literal["batch", "layer", "none"] = "layer"
    gp_weight: float = _at_least(0.0, 10.0, "gradient penalty weight (0: off)")


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
