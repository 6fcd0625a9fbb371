"""``ModelMetadata``: the typed ``gantool.*`` entries, written by the exporter and read back
by the runtime through the same checks, with the messages users see."""

from __future__ import annotations

import dataclasses
import re

import pytest

from translator import onnx_metadata as meta
from translator.errors import GantoolError
from translator.onnx_metadata import ModelMetadata

TRANSLATION = ModelMetadata(
    kind="translation", model="cyclegan", direction="b2a", domain_from="female",
    domain_to="male", input_size=256, size_multiple=4, input_range=(-1.0, 1.0),
    channel_order="RGB", version="0.3.0", precision="fp16", checkpoint_step="1200",
    extra={"gantool.architecture": "resnet_6blocks"},
)


def test_to_props_writes_every_stated_field_as_today_and_reads_back_equal():
    props = TRANSLATION.to_props()
    assert props == {
        meta.KIND: "translation", meta.MODEL: "cyclegan", meta.DIRECTION: "b2a",
        meta.DOMAIN_FROM: "female", meta.DOMAIN_TO: "male", meta.INPUT_SIZE: "256",
        meta.SIZE_MULTIPLE: "4", meta.INPUT_RANGE: "-1,1", meta.CHANNEL_ORDER: "RGB",
        meta.VERSION: "0.3.0", meta.PRECISION: "fp16", meta.CHECKPOINT_STEP: "1200",
        "gantool.architecture": "resnet_6blocks",
    }
    assert ModelMetadata.from_props(props) == TRANSLATION


def test_generation_metadata_leaves_translation_keys_out():
    gen = ModelMetadata(kind="generation", model="dcgan", input_size=64, latent_dim=100)
    props = gen.to_props()
    assert props == {meta.KIND: "generation", meta.MODEL: "dcgan", meta.INPUT_SIZE: "64",
                     meta.LATENT_DIM: "100"}
    assert meta.DIRECTION not in props and ModelMetadata.from_props(props) == gen


@pytest.mark.parametrize(("value", "text"), [((0.0, 1.0), "0,1"), ((-0.5, 0.25), "-0.5,0.25"),
                                             ((-1.0, 1.0), "-1,1"), ((0.1, 0.3), "0.1,0.3")])
def test_ranges_are_written_in_decimal_and_read_back_exactly(value, text):
    props = ModelMetadata(input_range=value).to_props()
    assert props == {meta.INPUT_RANGE: text}
    assert ModelMetadata.from_props(props).input_range == value


def test_the_fields_are_the_core_keys():
    names = [f.name for f in dataclasses.fields(ModelMetadata) if f.name != "extra"]
    assert [meta.PREFIX + n for n in names] == list(meta.CORE_KEYS)


@pytest.mark.parametrize(("key", "value", "message"), [
    (meta.INPUT_SIZE, "6000", "m.onnx: gantool.input_size must be a whole number from 8 to 2048, "
                              "not '6000'"),
    (meta.SIZE_MULTIPLE, "1.5", "m.onnx: gantool.size_multiple must be a whole number from 1 to "
                                "512, not '1.5'"),
    (meta.LATENT_DIM, "0", "m.onnx: gantool.latent_dim must be a whole number from 1 to 65536, "
                           "not '0'"),
    (meta.INPUT_RANGE, "1,0", "m.onnx: bad gantool.input_range '1,0': expected two finite numbers "
                              "like -1,1, the second larger"),
    (meta.KIND, "video", "m.onnx: unknown gantool.kind 'video'"),
    (meta.CHANNEL_ORDER, "rgba", "m.onnx: unsupported channel order 'RGBA'"),
])
def test_a_bad_value_is_refused_with_the_message_users_know(key, value, message):
    props = {**TRANSLATION.to_props(), key: value}
    with pytest.raises(GantoolError, match=f"^{re.escape(message)}$"):
        ModelMetadata.from_props(props, "m.onnx")


def test_the_kind_is_checked_first():
    props = {meta.INPUT_SIZE: "0", meta.KIND: "video"}
    with pytest.raises(GantoolError, match="unknown gantool.kind"):
        ModelMetadata.from_props(props, "m.onnx")


def test_missing_and_empty_entries_are_unstated_and_unknown_ones_kept():
    props = {meta.KIND: "", meta.INPUT_SIZE: "", meta.MODEL: "pix2pix",
             "gantool.int8_psnr": "41.20", "producer.note": "not ours"}
    read = ModelMetadata.from_props(props)
    assert read == ModelMetadata(model="pix2pix", extra={"gantool.int8_psnr": "41.20"})
    assert (read.kind, read.input_size, read.input_range, read.latent_dim) == ("", None, None, None)
    assert ModelMetadata.from_props({}) == ModelMetadata() and ModelMetadata().to_props() == {}


def test_checked_values_come_back_typed_and_normalised():
    read = ModelMetadata.from_props({meta.INPUT_SIZE: " 96 ", meta.CHANNEL_ORDER: "bgr",
                                     meta.INPUT_RANGE: "0, 1"})
    assert (read.input_size, read.channel_order, read.input_range) == (96, "BGR", (0.0, 1.0))


def test_stated_fields_win_over_extra():
    stated = ModelMetadata(kind="translation", extra={meta.KIND: "generation", "gantool.x": "1"})
    assert stated.to_props() == {meta.KIND: "translation", "gantool.x": "1"}


def test_inspect_shows_metadata_as_written_and_why_the_runtime_refuses_it(tmp_path):
    from click.testing import CliRunner
    from runtime_helpers import GANTOOL_META, make_invert_model
    from translator.cli import cli

    good = make_invert_model(tmp_path / "good.onnx")
    bad = make_invert_model(tmp_path / "bad.onnx", metadata={**GANTOOL_META, meta.INPUT_SIZE: "6000"})
    shown = {p.name: CliRunner().invoke(cli, ["inspect", str(p)], catch_exceptions=False)
             for p in (good, bad)}
    assert all(r.exit_code == 0 for r in shown.values())
    assert re.search(r"gantool\.input_size\s+= 64\n", shown["good.onnx"].output)
    assert "Refused" not in shown["good.onnx"].output
    assert re.search(r"gantool\.input_size\s+= 6000\n", shown["bad.onnx"].output)
    assert ("  Refused by the runtime: this file: gantool.input_size must be a whole number from "
            "8 to 2048, not '6000'\n") in shown["bad.onnx"].output
