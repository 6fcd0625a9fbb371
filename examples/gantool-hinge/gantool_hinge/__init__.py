"""Registration only: importing this module must stay cheap (no torch), because gantool
loads every plugin to build its command line."""

from dataclasses import dataclass, field

import translator


@dataclass
class HingeConfig:
    size: int = 32  # set by gantool from --size
    latent_dim: int = field(default=64, metadata={"help": "length of the noise vector"})
    width: int = field(default=64, metadata={"help": "channels of the widest layer"})
    lr: float = field(default=2e-4, metadata={"help": "learning rate of both networks"})


def build(config: HingeConfig):
    from .model import HingeGAN  # torch is imported only when a model is built

    if config.size not in (32, 64):
        raise translator.GantoolError(f"hinge-gan trains at 32 or 64 px, not {config.size}")
    return HingeGAN(config)


@translator.hookimpl
def register_models(register):
    register(translator.ModelSpec(
        name="hinge-gan",
        kind="generation",
        description="GAN with the hinge loss (example third-party plugin)",
        config=HingeConfig,
        build=build,
        train_defaults={"batch_size": 64, "size": 32},
    ))
