"""The CycleGAN plugin's VARIANTS table: every row builds, names, exports and registers."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import torch
from translator.plugins.cyclegan import register_models
from translator.plugins.cyclegan.model import CycleGAN
from translator.plugins.cyclegan.variants import (
    TRAIN_DEFAULTS,
    VARIANTS,
    Variant,
    build_generator,
    find_variant,
)

from translator.registry import get_registry
from translator.specs import ModelSpec

#: Small enough to build and run in milliseconds; the U-Net's 5 levels divide 32.
TINY: dict[str, Any] = {"size": 32, "ngf": 4, "ndf": 4, "d_layers": 2}
#: At each config's defaults (256 px): the names the reference gives these generators.
DEFAULT_ARCHITECTURES = {"cyclegan": "resnet_9blocks", "cyclegan-unet": "unet_256",
                         "cyclegan-mobile": "mobile_9blocks"}


def rows() -> list[Variant]:
    return list(VARIANTS)


def test_the_table_holds_the_three_registered_models_once_each():
    assert [row.name for row in VARIANTS] == ["cyclegan", "cyclegan-unet", "cyclegan-mobile"]
    assert len({row.key for row in VARIANTS}) == len(VARIANTS)


@pytest.mark.parametrize("row", rows(), ids=lambda row: row.name)
def test_every_variant_builds_names_exports_and_registers(row: Variant):
    # Registers: the plugin's hook gives exactly this row's spec, and the registry has it.
    specs = {spec.name: spec for spec in _registered()}
    spec = specs[row.name]
    assert spec.config is row.config and spec.description == row.description
    assert spec.kind == "translation" and spec.augment == "crop-flip"
    assert spec.train_defaults == dict(TRAIN_DEFAULTS)
    assert spec.face_defaults == dict(row.face_defaults)
    assert get_registry().model(row.name).plugin == "cyclegan"

    # Names: at the defaults, the reference's name; the summary shows it.
    assert row.architecture(row.config()) == DEFAULT_ARCHITECTURES[row.name]
    assert spec.summary is not None
    assert f"generator {DEFAULT_ARCHITECTURES[row.name]}:" in spec.summary(row.config())

    # Builds: both directions use this row's generator, looked up by its key.
    config = row.config(**TINY)
    model = spec.build(config)
    assert isinstance(model, CycleGAN) and model.variant is row
    expected = type(row.generator(config))
    assert type(model.nets["G_A"]) is expected and type(model.nets["G_B"]) is expected
    assert type(build_generator(config, row.key)) is expected
    assert find_variant(row.key) is row

    # Exports: in the row's wrapper, named by the row, and the wrapper's input runs.
    exportable = row.exportable()
    name = row.architecture(config)
    assert name.startswith(f"{row.key}_")
    for direction, gen in model.generators().items():
        assert type(gen) is exportable
        assert gen.metadata == {"direction": direction, "architecture": name}
        x = gen.example_input(1, config.size)
        with torch.no_grad():
            assert gen.module(x).shape == x.shape


@pytest.mark.parametrize("row", rows(), ids=lambda row: row.name)
def test_every_variants_config_keeps_its_defaults(row: Variant):
    # Every row's config is a CycleGANConfig whose depth option exists and defaults to auto.
    fields = {f.name: f for f in dataclasses.fields(row.config)}
    assert row.depth_option in fields and fields[row.depth_option].default == 0
    assert row.config().size == 256


def test_an_unknown_key_names_the_known_ones():
    with pytest.raises(ValueError, match="unknown CycleGAN variant 'vit'; known: resnet, unet, "
                                         "mobile"):
        find_variant("vit")
    with pytest.raises(ValueError, match="unknown CycleGAN variant"):
        build_generator(VARIANTS[0].config(**TINY), "vit")


def _registered() -> list[ModelSpec]:
    specs: list[ModelSpec] = []
    register_models(specs.append)
    return specs
