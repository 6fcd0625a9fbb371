"""Registration only: importing this module stays cheap (no torch), because gantool loads
every plugin to build its command line. The work lives in ``data``, ``model`` and
``command``, imported when used."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import translator


@dataclass
class MiniCycleGANConfig:
    """Every field becomes a ``gantool train mini-cyclegan`` flag; every field has a default."""

    size: int = 32  # set by gantool from --size
    width: int = field(default=32, metadata={"help": "channels of the generators' middle layers"})
    lr: float = field(default=2e-4, metadata={"help": "learning rate of all four networks"})
    lambda_cycle: float = field(default=10.0, metadata={"help": "weight of the cycle loss"})
    # A Literal becomes a choice flag: --decay linear|none.
    decay: Literal["linear", "none"] = field(default="linear", metadata={
        "help": "learning-rate schedule over the run"})
    # A bool becomes a pair of flags: --identity/--no-identity.
    identity: bool = field(default=False, metadata={
        "help": "also ask each generator to leave images of its target domain unchanged"})


def build(config: MiniCycleGANConfig):
    from .model import MiniCycleGAN  # torch is imported only when a model is built

    if config.size % 2:
        raise translator.GantoolError(f"mini-cyclegan needs an even --size, not {config.size}")
    return MiniCycleGAN(config)


def open_stripes(path, request: translator.DataRequest):
    from .data import open_stripes as open_

    return open_(request)


@translator.hookimpl
def register_models(register):
    register(translator.ModelSpec(
        name="mini-cyclegan",
        kind="translation",
        description="A small CycleGAN: encoder-decoder generators, LSGAN and cycle loss "
                    "(example third-party plugin)",
        config=MiniCycleGANConfig,
        build=build,
        augment="crop-flip",
        train_defaults={"batch_size": 8, "size": 32},
    ))


@translator.hookimpl
def register_datasets(register):
    register(translator.DatasetSpec(
        name="stripes",
        description="synthetic horizontal and vertical stripes (example plugin); domains "
                    "horizontal, vertical",
        open=open_stripes,  # detect=None: chosen by name, --data stripes
    ))


@translator.hookimpl
def register_commands(cli):
    from .command import stripes_preview

    cli.add_command(stripes_preview)
