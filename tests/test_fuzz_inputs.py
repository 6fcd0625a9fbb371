"""Malformed inputs thrown at every loader: config.json, state.pt, ONNX metadata, images.

A seeded generator makes each kind of damage (wrong types, out-of-range numbers, missing
keys, random and truncated bytes) so a failure reproduces. The loaders are called
in-process (fast); a sample of cases goes through the CLI, and two through a real process,
to check the user sees one ``Error:`` line, a non-zero exit and never a traceback.
"""

from __future__ import annotations

import io
import json
import random
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch
from PIL import Image
from runtime_helpers import GANTOOL_META, fake_size_png, invoke, make_invert_model

from translator.data.images import ImageReadError, read_image
from translator.errors import GantoolError
from translator.runtime.session import ModelSession
from translator.training.checkpoint import STATE, find_checkpoint, load_state
from translator.training.runs import read_run_config

SEED = 20261124
JUNK = [None, True, -1, 0, -100, 10**12, 1e308, float("-inf"), "x", "", "abc", [], [1, 2], {},
        {"a": 1}, "../..", "\x00", "1e8"]


def _one_error_line(output: str) -> bool:
    lines = output.splitlines()
    return "Traceback" not in output and sum(ln.startswith("Error: ") for ln in lines) == 1


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from click.testing import CliRunner
    from translator.cli import cli

    out = tmp_path_factory.mktemp("fuzz") / "run"
    args = ["train", "dcgan", "--data", "demo", "--steps", "1", "--size", "32", "--batch-size", "2",
            "--ngf", "8", "--ndf", "8", "--workers", "0", "--out", str(out)]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return out


# -- config.json ---------------------------------------------------------------------------
def bad_configs(good: dict, rng: random.Random, n: int) -> list[object]:
    """Structurally wrong files, and good ones with one field given a wrongly typed value."""
    cases: list[object] = [[], "dcgan", 5, None, [good], {"model": None}, {"model": "no-such-model"},
                           {**good, "train": []}, {**good, "model_config": "x"}, {**good, "data": 3}]
    wrong = {"size": ["abc", 2.5, [], 4, -1], "steps": ["x", 0.5, {}], "batch_size": [[], 0, "2"],
             "log_every": [0, -1, "x", None], "seed": [1.5, "x", None], "checkpoint_every": [-1, 0, []],
             "keep_last": [-2, "3"], "data": [5, [], {}, None], "cache": ["yes", 5, None],
             "epochs": ["many", 0, -1.5, float("inf")]}
    while len(cases) < n:
        field = rng.choice(sorted(wrong))
        cases.append({**good, "train": {**good["train"], field: rng.choice(wrong[field])}})
    return cases[:n]


def test_malformed_config_json_gives_one_error(run, tmp_path):
    good = json.loads((run / "config.json").read_text())
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    rng = random.Random(SEED)
    cases = bad_configs(good, rng, 70)
    cases += [b"", b"{", b"\xff\xfe", b"{" * 100000, json.dumps(good).encode()[:50]]
    for i, case in enumerate(cases):
        raw = case if isinstance(case, bytes) else json.dumps(case).encode()
        (copy / "config.json").write_bytes(raw)
        with pytest.raises(GantoolError) as caught:
            read_run_config(copy)
        assert "\n" not in str(caught.value), (i, case)
        if i % 8 == 0:  # a sample through the CLI
            result = invoke(["sample", str(copy), "-o", str(tmp_path / "g.png")])
            assert result.exit_code == 1 and _one_error_line(result.output), (case, result.output)


# -- state.pt ------------------------------------------------------------------------------
def bad_states(good: dict, rng: random.Random, n: int) -> list[object]:
    """Not a dict at all, or a required key missing, or a key given a wrongly typed value."""
    expected = {"step": int, "model": str, "optimizers": dict, "schedulers": dict, "rng": list,
                "fixed": dict, "extra": dict, "scalers": dict}
    required = ["step", "model", "optimizers", "schedulers", "rng"]
    cases: list[object] = [[1, 2], torch.zeros(3), "state", 7, None, {}]
    while len(cases) < n:
        state = dict(good)
        for key in rng.sample(sorted(expected), rng.randint(1, 2)):
            if key in required and rng.random() < 0.25:
                state.pop(key)
                continue
            junk = [j for j in [*JUNK, torch.zeros(2)] if type(j) is not expected[key]]
            state[key] = rng.choice(junk)
        cases.append(state)
    return cases


def test_malformed_state_pt_gives_one_error(run, tmp_path):
    folder = tmp_path / "step-0000001"
    shutil.copytree(find_checkpoint(run / "checkpoints"), folder)
    good = torch.load(folder / STATE, weights_only=True)
    rng = random.Random(SEED)
    cases = bad_states(good, rng, 70)
    raw = (folder / STATE).read_bytes()
    blobs = [b"", raw[: len(raw) // 2], raw[:100], bytes(rng.randrange(256) for _ in range(500))]
    for case in [*cases, *blobs]:
        if isinstance(case, bytes):
            (folder / STATE).write_bytes(case)
        else:
            torch.save(case, folder / STATE)
        with pytest.raises(GantoolError) as caught:
            load_state(folder)
        assert "\n" not in str(caught.value)
    assert len(cases) + len(blobs) >= 60


# -- ONNX metadata -------------------------------------------------------------------------
BAD_META = {
    "gantool.input_size": ["0", "-5", "6000", "100000", "1e8", "abc", "nan", "3.5", "  "],
    "gantool.size_multiple": ["0", "-3", "100000", "x", "1.5"],
    "gantool.input_range": ["1,0", "0,inf", "nan,1", "a,b", "1", "0,1,2", "-1e300,1", ","],
    "gantool.kind": ["video", "x", "TRANSLATION "],
    "gantool.channel_order": ["RGBA", "CMYK", "x"],
}


def test_malformed_onnx_metadata_gives_one_error(tmp_path):
    rng = random.Random(SEED)
    base = onnx.load(str(make_invert_model(tmp_path / "good.onnx")))
    cases = []
    for _ in range(55):
        meta = dict(GANTOOL_META)
        for key in rng.sample(sorted(BAD_META), rng.randint(1, 2)):
            meta[key] = rng.choice(BAD_META[key])
        cases.append(meta)
    for i, meta in enumerate(cases):
        model = onnx.ModelProto()
        model.CopyFrom(base)
        del model.metadata_props[:]
        onnx.helper.set_model_props(model, meta)
        path = tmp_path / f"bad{i}.onnx"
        onnx.save(model, str(path))
        with pytest.raises(GantoolError) as caught:
            ModelSession(path, "cpu", log=lambda _m: None)
        assert "\n" not in str(caught.value)
        if i % 10 == 0:
            result = invoke(["apply", "-m", str(path), str(path), "-o", str(tmp_path / "o.png")])
            assert result.exit_code == 1 and _one_error_line(result.output), result.output


# -- images --------------------------------------------------------------------------------
def bad_images(rng: random.Random, folder: Path) -> list[Path]:
    photo = (np.random.default_rng(SEED).random((40, 50, 3)) * 255).astype(np.uint8)
    encoded = {}
    for fmt in ("PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF"):
        buf = io.BytesIO()
        Image.fromarray(photo).save(buf, fmt)
        encoded[fmt] = buf.getvalue()
    paths = [fake_size_png(folder / "bomb.png", 20000, 20000),
             fake_size_png(folder / "zero.png", 0, 5)]
    (folder / "empty.png").write_bytes(b"")
    paths.append(folder / "empty.png")
    for i in range(40):
        fmt = rng.choice(sorted(encoded))
        data = bytearray(encoded[fmt])
        how = i % 3
        if how == 0:  # truncated
            data = data[: rng.randint(8, len(data) // 2)]
        elif how == 1:  # header kept, body scrambled
            for _ in range(20):
                data[rng.randrange(16, len(data))] = rng.randrange(256)
            data = data[: len(data) * 3 // 4]
        else:  # magic bytes followed by noise
            data = data[:8] + bytes(rng.randrange(256) for _ in range(200))
        path = folder / f"bad{i}.{fmt.lower()}"
        path.write_bytes(bytes(data))
        paths.append(path)
    return paths


def test_malformed_images_are_reported_never_raised(tmp_path, recwarn):
    folder = tmp_path / "in"
    folder.mkdir()
    paths = bad_images(random.Random(SEED), folder)
    from translator.serve.service import ServeError, decode_upload

    for path in paths:
        with pytest.raises(ImageReadError) as caught:
            read_image(path)
        assert "\n" not in str(caught.value) and str(caught.value)
        with pytest.raises(ServeError) as refused:  # the same bytes uploaded to gantool serve
            decode_upload(path.read_bytes())
        assert 400 <= refused.value.status < 500
    model = make_invert_model(tmp_path / "m.onnx")
    result = invoke(["apply", "-m", str(model), str(folder), "-o", str(tmp_path / "out"), "--no-progress"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    failed = [ln for ln in result.output.splitlines() if ln.startswith("failed ")]
    assert len(failed) == len(paths)
    assert not [w for w in recwarn if "PIL" in w.filename], [str(w.message) for w in recwarn]


# -- real processes ------------------------------------------------------------------------
def test_a_real_process_prints_one_error_line(run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / "config.json").write_text("[]")
    torch.save({"step": "abc"}, find_checkpoint(copy / "checkpoints") / STATE)
    for args in (["sample", str(copy), "-o", str(tmp_path / "g.png")],):
        proc = subprocess.run([sys.executable, "-m", "translator.cli", *args], capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 1 and _one_error_line(proc.stderr), proc.stderr
    (copy / "config.json").write_text((run / "config.json").read_text())
    proc = subprocess.run([sys.executable, "-m", "translator.cli", "train", "--resume", str(copy),
                           "--steps", "3"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and _one_error_line(proc.stderr) and "'step'" in proc.stderr, proc.stderr


# -- out-of-range options: flags, config.json and crafted training state -------------------
@pytest.fixture(scope="module")
def cycle_run(tmp_path_factory):
    """A two-step CycleGAN run: it has image pools and a learning-rate schedule."""
    out = tmp_path_factory.mktemp("fuzz-cycle") / "run"
    args = ["train", "cyclegan-mobile", "--data", "demo", "--steps", "2", "--size", "32",
            "--batch-size", "1", "--ngf", "4", "--ndf", "8", "--workers", "0", "--out", str(out)]
    result = invoke(args)
    assert result.exit_code == 0, result.output
    return out


BAD_FLAGS = [["--seed", "-1"], ["--seed", "99999999999999999999"], ["--ngf", "0"], ["--ndf", "0"],
             ["--lr", "-1"], ["--lr", "nan"], ["--beta1", "2"], ["--init-std", "-1"],
             ["--epochs", "inf"], ["--ema", "nan"], ["--ema", "inf"], ["--gan-loss", "evil"],
             ["--decay-start", "nan"], ["--lambda-cycle", "-inf"]]


@pytest.mark.parametrize("flag", BAD_FLAGS, ids=" ".join)
def test_an_out_of_range_flag_is_one_error_line(flag, tmp_path):
    out = tmp_path / "run"
    result = invoke(["train", "cyclegan-mobile", "--data", "demo", "--steps", "1", "--size", "32",
                     "--workers", "0", "--out", str(out), *flag])
    assert result.exit_code == 2 and _one_error_line(result.output), result.output
    assert flag[0] in result.output and not out.exists()


_FieldValues = dict[str, dict[str, list[Any]]]
BAD_CONFIG_VALUES: _FieldValues = {
    "train": {"seed": [-1, 99999999999999999999], "epochs": [float("inf")],
              "ema": [float("nan"), float("inf")], "size": [float("nan")]},
    "model_config": {"ngf": [0], "ndf": [0], "lr": [-1, float("nan")],
                     "beta1": [2], "beta2": [1.0], "init_std": [-1],
                     "gan_loss": ["evil"], "pool_size": [-5]}}


def test_the_same_values_in_config_json_are_one_error_line(cycle_run, tmp_path):
    good = json.loads((cycle_run / "config.json").read_text())
    copy = tmp_path / "run"
    shutil.copytree(cycle_run, copy)
    cases = [(section, name, value) for section, fields in BAD_CONFIG_VALUES.items()
             for name, values in fields.items() for value in values]
    for i, (section, name, value) in enumerate(cases):
        (copy / "config.json").write_text(json.dumps({**good, section: {**good[section], name: value}}))
        with pytest.raises(GantoolError) as caught:
            read_run_config(copy)
        assert "\n" not in str(caught.value) and name.replace("_", "-") in str(caught.value), name
        if i % 4 == 0:  # a sample through the CLI
            result = invoke(["train", "--resume", str(copy), "--steps", "3"])
            assert result.exit_code == 1 and _one_error_line(result.output), result.output


ADAM = ("optimizers", "G", "state", 0)
CRAFTED_STATE_VALUES = {
    "Adam moments of the wrong shape": (ADAM + ("exp_avg",), torch.zeros(2, 2)),
    "an Adam step of three numbers": (ADAM + ("step",), torch.zeros(3)),
    "an all-zero random state": (("rng", 0, "torch"), torch.zeros_like(torch.get_rng_state())),
    "float64 fixed inputs": (("fixed", "a"), torch.zeros(4, 3, 32, 32, dtype=torch.float64)),
    "int32 fixed inputs": (("fixed", "b"), torch.zeros(4, 3, 32, 32, dtype=torch.int32)),
    "a pool of the wrong shape": (("extra", "pool_A", "images"), torch.zeros(2, 5)),
    "a pool that is no tensor": (("extra", "pool_B", "images"), "images"),
    "a negative step": (("step",), -1),
    "lr='abc'": (("optimizers", "G", "param_groups", 0, "lr"), "abc"),
    "a NaN lr": (("optimizers", "D", "param_groups", 0, "lr"), float("nan")),
    "impossible betas": (("optimizers", "G", "param_groups", 0, "betas"), (5.0, -1.0)),
    "an empty scheduler list": (("schedulers", "G", "base_lrs"), []),
    "an empty last-lr list": (("schedulers", "D", "_last_lr"), []),
    "a scheduler step 'x'": (("schedulers", "D", "last_epoch"), "x"),
}


def _with_lists(state, path: tuple, value: object):
    """A copy of ``state`` with the value at ``path`` (keys into nested dicts and lists)
    replaced."""
    head, *rest = path
    copy = list(state) if isinstance(state, list) else dict(state)
    copy[head] = _with_lists(state[head], tuple(rest), value) if rest else value
    return copy


@pytest.mark.parametrize("name", list(CRAFTED_STATE_VALUES))
def test_a_state_pt_of_wrong_shapes_dtypes_or_values_is_one_error_line(cycle_run, tmp_path, name):
    copy = tmp_path / "run"
    shutil.copytree(cycle_run, copy)
    path = find_checkpoint(copy / "checkpoints") / STATE
    good = torch.load(path, weights_only=True)
    good.pop("extra_ranks")  # so that the one process takes 'extra'
    where, value = CRAFTED_STATE_VALUES[name]
    torch.save(_with_lists(good, where, value), path)
    losses = (copy / "logs" / "losses.csv").read_bytes()
    result = invoke(["train", "--resume", str(copy), "--steps", "3"])
    assert result.exit_code == 1 and _one_error_line(result.output), result.output
    assert (copy / "logs" / "losses.csv").read_bytes() == losses
