"""`gantool import reference`: the reference CycleGAN's checkpoints become gantool runs, and
its pix2pix generators (a U-Net with batch norm) pix2pix runs.

Checkpoints are built here in the reference's exact layout: the key names and shapes in
fixtures/reference_cyclegan_layout.json were recorded from the reference's networks.py
(junyanz/pytorch-CycleGAN-and-pix2pix), so our layout is checked against theirs, not
against itself. Values are random; nothing is downloaded.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

FIXTURE = Path(__file__).parent / "fixtures" / "reference_cyclegan_layout.json"
LAYOUT = json.loads(FIXTURE.read_text())["networks"]
GENERATORS = ["resnet_9blocks", "resnet_6blocks", "unet_256"]


# -- checkpoints in the reference's layout ---------------------------------------------------
def scaled(shape: list[int], width: int) -> list[int]:
    """The fixture's shape (ngf = ndf = 64) at another width: channel counts scale."""
    return [d * width // 64 if d % 64 == 0 else d for d in shape]


def reference_state(name: str, width: int = 8, legacy: bool = False, prefix: str = "",
                    seed: int = 0, device: str = "cpu") -> dict[str, torch.Tensor]:
    """Random tensors named and shaped as the reference saves network ``name``."""
    gen = torch.Generator().manual_seed(seed)
    entries = LAYOUT[name]["parameters"] | LAYOUT[name].get("buffers", {})  # batch norm's
    if legacy:
        entries |= LAYOUT[name]["legacy_buffers"]
    state = {}
    for key, shape in entries.items():
        shape = scaled(shape, width)
        if device == "meta":
            value = torch.empty(shape, device="meta")
        elif key.endswith("num_batches_tracked"):
            value = torch.tensor(1234)
        elif key.endswith(("running_mean", "running_var")):
            value = torch.rand(shape, generator=gen) + 0.5  # would distort if used
        else:  # about unit variance through every layer, so tanh does not saturate
            fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 400
            value = torch.randn(shape, generator=gen) * (0.5 / fan_in**0.5)
        state[prefix + key] = value
    return state


def save(state: dict[str, torch.Tensor], path: Path, legacy_format: bool = False) -> Path:
    torch.save(state, path, _use_new_zipfile_serialization=not legacy_format)
    return path


# -- an independent forward pass, straight from the reference's tensors ----------------------
def _inorm(x: torch.Tensor) -> torch.Tensor:
    return F.instance_norm(x, eps=1e-5)


def resnet_forward(s: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    def conv(x, key, stride=1, padding=0):
        return F.conv2d(x, s[f"{key}.weight"], s[f"{key}.bias"], stride=stride, padding=padding)

    def reflect(x, n):
        return F.pad(x, (n, n, n, n), mode="reflect")

    x = F.relu(_inorm(conv(reflect(x, 3), "model.1")))
    x = F.relu(_inorm(conv(x, "model.4", 2, 1)))
    x = F.relu(_inorm(conv(x, "model.7", 2, 1)))
    blocks = sorted({int(k.split(".")[1]) for k in s if ".conv_block." in k})
    for i in blocks:
        y = F.relu(_inorm(conv(reflect(x, 1), f"model.{i}.conv_block.1")))
        x = x + _inorm(conv(reflect(y, 1), f"model.{i}.conv_block.5"))
    last = blocks[-1]
    for i in (last + 1, last + 4):
        x = F.conv_transpose2d(x, s[f"model.{i}.weight"], s[f"model.{i}.bias"], stride=2,
                               padding=1, output_padding=1)
        x = F.relu(_inorm(x))
    return torch.tanh(conv(reflect(x, 3), f"model.{last + 8}"))


def unet_forward(s: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """The reference's U-Net in eval mode: instance norm, or (pix2pix) batch norm with its
    running statistics, where convolutions before a norm have no bias; dropout is off."""

    def norm(x, key):
        if f"{key}.running_mean" not in s:
            return _inorm(x)
        return F.batch_norm(x, s[f"{key}.running_mean"], s[f"{key}.running_var"],
                            s[f"{key}.weight"], s[f"{key}.bias"], training=False, eps=1e-5)

    def down(x, key):
        return F.conv2d(x, s[f"{key}.weight"], s.get(f"{key}.bias"), stride=2, padding=1)

    def up(x, key):
        return F.conv_transpose2d(x, s[f"{key}.weight"], s.get(f"{key}.bias"), stride=2,
                                  padding=1)

    def level(x, p):
        # The reference's LeakyReLU is in-place, so its skip carries leaky_relu(x); the
        # ReLU after the concatenation makes that the same as x.
        x = F.leaky_relu(x, 0.2)
        if f"{p}3.weight" in s:  # innermost: down, up, norm
            y = norm(up(F.relu(down(x, f"{p}1")), f"{p}3"), f"{p}4")
        else:
            y = level(norm(down(x, f"{p}1"), f"{p}2"), f"{p}3.model.")
            y = norm(up(F.relu(y), f"{p}5"), f"{p}6")
        return torch.cat([x, y], 1)

    y = level(down(x, "model.model.0"), "model.model.1.model.")
    return torch.tanh(up(F.relu(y), "model.model.3"))


def reference_forward(name: str, state: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    return (unet_forward if name.startswith("unet") else resnet_forward)(state, x)


def input_for(name: str, seed: int = 1) -> torch.Tensor:
    size = 256 if name == "unet_256" else 32  # a U-Net-256 needs multiples of 256
    return torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


# -- helpers -------------------------------------------------------------------------------
@pytest.fixture
def cli(run_cli):
    """``run_cli`` with plugin commands added, as ``gantool`` itself does."""
    from translator.cli import add_plugin_commands, cli

    add_plugin_commands(cli)
    return run_cli


def make_domain_folders(root: Path, count: int = 3, size: int = 40) -> Path:
    rng = np.random.default_rng(0)
    for domain in ("trainA", "trainB"):
        (root / domain).mkdir(parents=True)
        for i in range(count):
            pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / domain / f"{i}.png")
    return root


def generator_of(run: Path, net: str = "G_A") -> torch.nn.Module:
    from translator.training.runs import load_model

    model, _, _ = load_model(run)
    return model.nets[net]


# -- our layout is theirs --------------------------------------------------------------------
@pytest.mark.parametrize("name", [*GENERATORS, "basic_D"])
def test_our_networks_have_the_reference_key_names_and_shapes(name):
    from translator.plugins.cyclegan.networks import (
        NLayerDiscriminator,
        ResnetGenerator,
        UnetGenerator,
    )

    builders = {
        "resnet_9blocks": lambda: ResnetGenerator(3, 3, ngf=64, n_blocks=9),
        "resnet_6blocks": lambda: ResnetGenerator(3, 3, ngf=64, n_blocks=6),
        "unet_256": lambda: UnetGenerator(3, 3, num_downs=8, ngf=64),
        "basic_D": lambda: NLayerDiscriminator(3, ndf=64, n_layers=3),
    }
    with torch.device("meta"):
        ours = builders[name]()
    assert [[k, list(v.shape)] for k, v in ours.state_dict().items()] == \
        [[k, v] for k, v in LAYOUT[name]["parameters"].items()]


@pytest.mark.parametrize("name, width, expected", [
    ("resnet_9blocks", 64, ("resnet", 64, 9, "resnet_9blocks")),
    ("resnet_6blocks", 32, ("resnet", 32, 6, "resnet_6blocks")),
    ("unet_256", 64, ("unet", 64, 8, "unet_256")),
])
@pytest.mark.parametrize("legacy, prefix", [(False, ""), (True, "module.")])
def test_architecture_is_read_from_the_tensors(name, width, expected, legacy, prefix):
    from translator.plugins.cyclegan.reference import clean_state_dict, detect_generator

    state = reference_state(name, width, legacy, prefix, device="meta")
    clean = clean_state_dict(state, Path("x.pth"))
    assert set(clean) == set(LAYOUT[name]["parameters"])  # prefix and legacy keys gone
    arch = detect_generator(clean, Path("x.pth"))
    assert (arch.kind, arch.ngf, arch.depth, arch.name) == expected


def test_discriminator_is_read_from_the_tensors():
    from translator.plugins.cyclegan.reference import clean_state_dict, detect_discriminator

    state = clean_state_dict(reference_state("basic_D", 32, legacy=True, device="meta"), Path("d"))
    arch = detect_discriminator(state, Path("d"))
    assert (arch.ndf, arch.n_layers) == (32, 3)


# -- imported runs compute what the reference computes ---------------------------------------
@pytest.mark.parametrize("name, width, legacy, prefix, legacy_format", [
    ("resnet_9blocks", 64, False, "", False),         # a published model's real shapes
    ("resnet_6blocks", 8, True, "module.", True),     # legacy keys, DataParallel, old format
    ("unet_256", 8, True, "", False),
])
def test_imported_generator_gives_the_reference_output(tmp_path, name, width, legacy, prefix,
                                                       legacy_format):
    from translator.plugins.cyclegan.importer import ImportOptions, ReferenceFiles, import_reference
    from translator.plugins.cyclegan.networks import ResnetGenerator, UnetGenerator

    state = reference_state(name, width, legacy, prefix)
    pth = save(state, tmp_path / "latest_net_G.pth", legacy_format)
    run = import_reference(ReferenceFiles(pth), tmp_path / "run",
                           ImportOptions("photo", "painting", size=256), log=lambda _: None)

    params = {k: v for k, v in reference_state(name, width).items()}
    direct = (UnetGenerator(3, 3, num_downs=8, ngf=width) if name == "unet_256"
              else ResnetGenerator(3, 3, ngf=width, n_blocks=int(name[7])))
    direct.load_state_dict(params)
    x = input_for(name)
    with torch.no_grad():
        imported = generator_of(run).eval()(x)
        expected = direct.eval()(x)
        independent = reference_forward(name, params, x)
    assert (imported - expected).abs().max() <= 1e-5
    assert (imported - independent).abs().max() <= 1e-5
    # Not a saturated tanh or a constant: the comparison means something.
    assert imported.std() > 0.05 and (imported.abs() < 0.9).float().mean() > 0.5


def test_reference_folder_with_discriminators_resumes_training(tmp_path):
    from translator.plugins.cyclegan.importer import (
        ImportOptions,
        find_reference_files,
        import_reference,
    )

    from translator.config import TrainConfig
    from translator.training import train
    from translator.training.checkpoint import find_checkpoint, load_weights

    folder = tmp_path / "checkpoints" / "horse2zebra"
    folder.mkdir(parents=True)
    nets = {"G_A": ("resnet_6blocks", 1), "G_B": ("resnet_6blocks", 2),
            "D_A": ("basic_D", 3), "D_B": ("basic_D", 4)}
    states = {n: reference_state(kind, 8, legacy=True, seed=seed)
              for n, (kind, seed) in nets.items()}
    for n, state in states.items():
        save(state, folder / f"latest_net_{n}.pth")
    save(reference_state("resnet_9blocks", 8), folder / "5_net_G_A.pth")  # another epoch
    data = make_domain_folders(tmp_path / "data")

    files = find_reference_files([folder])
    assert files.G_A == folder / "latest_net_G_A.pth" and files.D_B == folder / "latest_net_D_B.pth"
    run = import_reference(files, tmp_path / "run",
                           ImportOptions("horse", "zebra", size=32, data=str(data)),
                           log=lambda _: None)
    imported = load_weights(find_checkpoint(run / "checkpoints"))
    for n, state in states.items():
        for key, value in state.items():
            if "running" not in key and "num_batches" not in key:
                assert torch.equal(imported[f"{n}.{key}"], value)

    result = train(TrainConfig(steps=2), resume=run, progress=False)
    assert result.steps == 2
    trained = load_weights(find_checkpoint(run / "checkpoints"))
    moved = (trained["D_A.model.0.weight"] - imported["D_A.model.0.weight"]).abs().max()
    assert moved > 0  # the imported discriminator itself was trained on


def test_resume_without_recorded_data_says_so(tmp_path):
    from translator.plugins.cyclegan.importer import ImportOptions, ReferenceFiles, import_reference

    from translator.config import TrainConfig
    from translator.errors import GantoolError
    from translator.training import train

    pth = save(reference_state("resnet_6blocks"), tmp_path / "g.pth")
    run = import_reference(ReferenceFiles(pth), tmp_path / "run", ImportOptions(size=32),
                           log=lambda _: None)
    with pytest.raises(GantoolError, match="no images to train it further"):
        train(TrainConfig(steps=2), resume=run, progress=False)


def test_evaluate_and_int8_of_a_run_without_data_say_what_they_lack(tmp_path, run_cli):
    from translator.plugins.cyclegan.importer import ImportOptions, ReferenceFiles, import_reference

    pth = save(reference_state("resnet_6blocks"), tmp_path / "g.pth")
    run = import_reference(ReferenceFiles(pth), tmp_path / "run", ImportOptions(size=32),
                           log=lambda _: None)
    result = run_cli("evaluate", run)
    assert result.exit_code == 1 and "no images to evaluate it on" in result.output
    assert "trained further" not in result.output
    result = run_cli("export", "onnx", run, "--int8", "-o", tmp_path / "int8")
    assert result.exit_code == 1 and "no images to calibrate --int8 with" in result.output


# -- the commands, from .pth to the runtime --------------------------------------------------
def test_import_then_export_translate_and_apply(cli, tmp_path):
    import onnx

    pth = save(reference_state("resnet_6blocks", 8, legacy=True, prefix="module."),
               tmp_path / "latest_net_G.pth")
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)) \
        .save(tmp_path / "photo.png")
    result = cli("import", "reference", pth, "-o", tmp_path / "run", "--domain-a", "photo",
                 "--domain-b", "monet", "--size", "32")
    assert result.exit_code == 0, result.output
    assert "resnet_6blocks (ngf 8)" in result.output and "no G_B" in result.output

    onnx_file = tmp_path / "photo2monet.onnx"
    result = cli("export", "onnx", tmp_path / "run", "--direction", "a2b", "-o", onnx_file)
    assert result.exit_code == 0, result.output
    props = {p.key: p.value for p in onnx.load(str(onnx_file)).metadata_props}
    assert props["gantool.domain_from"] == "photo" and props["gantool.domain_to"] == "monet"
    assert props["gantool.architecture"] == "resnet_6blocks"
    assert props["gantool.input_size"] == "32"

    result = cli("translate", tmp_path / "run", tmp_path / "photo.png", "-o",
                 tmp_path / "torch.png", "--no-progress")
    assert result.exit_code == 0, result.output
    result = cli("apply", "--model", onnx_file, tmp_path / "photo.png", "-o",
                 tmp_path / "onnx.png", "--no-progress")
    assert result.exit_code == 0, result.output
    by_torch = np.asarray(Image.open(tmp_path / "torch.png"), dtype=np.int16)
    by_onnx = np.asarray(Image.open(tmp_path / "onnx.png"), dtype=np.int16)
    assert by_torch.shape == by_onnx.shape == (48, 64, 3)
    assert np.abs(by_torch - by_onnx).max() <= 1


def test_the_untrained_direction_of_one_imported_generator_is_refused(cli, tmp_path):
    pth = save(reference_state("resnet_6blocks", 8), tmp_path / "latest_net_G.pth")
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "photo.png")
    run = tmp_path / "run"
    assert cli("import", "reference", pth, "-o", run, "--size", "32").exit_code == 0

    result = cli("export", "onnx", run, "-o", tmp_path / "out" / "m.onnx")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["m.onnx"]
    assert "Skipped b2a: never trained (imported from latest_net_G.pth alone" in result.output
    for command in (["export", "onnx", run, "--direction", "b2a", "-o", tmp_path / "b.onnx"],
                    ["translate", run, tmp_path / "photo.png", "--direction", "b2a", "-o",
                     tmp_path / "b.png", "--no-progress"]):
        result = cli(*command)
        assert result.exit_code == 1 and "b2a generator was never trained" in result.output
        assert "Traceback" not in result.output
    assert not (tmp_path / "b.onnx").exists() and not (tmp_path / "b.png").exists()


def test_both_imported_generators_export_both_directions(tmp_path):
    from translator.plugins.cyclegan.importer import ImportOptions, ReferenceFiles, import_reference

    from translator.training.runs import read_run_config

    g_a = save(reference_state("resnet_6blocks", 8), tmp_path / "a.pth")
    g_b = save(reference_state("resnet_6blocks", 8), tmp_path / "b.pth")
    run = import_reference(ReferenceFiles(g_a, g_b), tmp_path / "run", ImportOptions(size=32),
                           log=lambda _: None)
    assert read_run_config(run).untrained(0) == {}


@pytest.mark.parametrize(("name", "size"), [("unet_128", 128), ("unet_256", 256),
                                            ("resnet_6blocks", 256)])
def test_the_recorded_size_comes_from_the_architecture(tmp_path, name, size):
    from translator.plugins.cyclegan.importer import ImportOptions, ReferenceFiles, import_reference
    from translator.plugins.cyclegan.networks import UnetGenerator

    from translator.training.runs import read_run_config

    # The fixture has no U-Net-128; ours has the reference's names (tested above).
    state = (UnetGenerator(num_downs=7, ngf=4).state_dict() if name == "unet_128"
             else reference_state(name, 4))
    pth = save(state, tmp_path / "g.pth")
    run = import_reference(ReferenceFiles(pth), tmp_path / "run", ImportOptions(),
                           log=lambda _: None)
    assert read_run_config(run).train.size == size


def test_one_step_from_pth_to_onnx(cli, tmp_path):
    from translator.runtime.session import ModelSession

    pth = save(reference_state("resnet_9blocks", 8), tmp_path / "style_monet.pth")
    onnx_file = tmp_path / "monet.onnx"
    result = cli("import", "reference", pth, "--onnx", onnx_file, "--domain-a", "photo",
                 "--domain-b", "monet", "--size", "32")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["monet.onnx", "style_monet.pth"]
    assert "Imported resnet_9blocks (ngf 8)\n" in result.output  # no temporary folder named
    model = ModelSession(onnx_file, provider="cpu", log=lambda _: None)
    assert (model.info.domain_from, model.info.domain_to) == ("photo", "monet")
    x = input_for("resnet_9blocks").numpy()
    expected = resnet_forward(reference_state("resnet_9blocks", 8), torch.from_numpy(x))
    assert np.abs(model.run(x) - expected.numpy()).max() <= 1e-4


# -- pix2pix generators: a U-Net with batch norm -----------------------------------------------
PIX2PIX = "pix2pix_unet_256_batch"


def pix2pix_state(width: int = 8, seed: int = 0) -> dict[str, torch.Tensor]:
    """A pix2pix generator in the reference's layout whose batch norms hold statistics
    measured on images (as a trained one's do), so that eval mode neither flattens nor
    saturates the output: the random tensors, with running statistics from one pass."""
    from translator.plugins.cyclegan.networks import UnetGenerator

    state = reference_state(PIX2PIX, width, seed=seed)
    net = UnetGenerator(3, 3, num_downs=8, ngf=width, batch_norm=True)
    net.load_state_dict(state)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # a plain average over what it sees
    with torch.no_grad():
        net.train()(input_for("unet_256", seed=seed + 7).repeat(2, 1, 1, 1))
    return {k: v.clone() for k, v in net.state_dict().items()}


def test_our_pix2pix_generator_has_the_reference_key_names_and_shapes():
    from translator.plugins.cyclegan.networks import UnetGenerator

    with torch.device("meta"):
        ours = UnetGenerator(3, 3, num_downs=8, ngf=64, batch_norm=True, dropout=True)
    expected = LAYOUT[PIX2PIX]["parameters"] | LAYOUT[PIX2PIX]["buffers"]
    assert {k: list(v.shape) for k, v in ours.state_dict().items()} == expected


def test_a_pix2pix_generator_is_recognised_with_its_running_statistics():
    from translator.plugins.cyclegan.reference import clean_state_dict, detect_generator

    clean = clean_state_dict(reference_state(PIX2PIX, 64, prefix="module.", device="meta"),
                             Path("g.pth"))
    assert set(clean) == set(LAYOUT[PIX2PIX]["parameters"]) | set(LAYOUT[PIX2PIX]["buffers"])
    arch = detect_generator(clean, Path("g.pth"))
    assert (arch.kind, arch.ngf, arch.depth, arch.norm, arch.name) == \
        ("unet", 64, 8, "batch", "unet_256")


def test_an_imported_pix2pix_generator_gives_the_reference_eval_output(cli, tmp_path):
    from translator.plugins.cyclegan.importer import ImportOptions, ReferenceFiles, import_reference

    from translator.runtime.session import ModelSession
    from translator.training.runs import read_run_config

    state = pix2pix_state()
    pth = save(state, tmp_path / "latest_net_G.pth")
    run = import_reference(ReferenceFiles(pth), tmp_path / "run",
                           ImportOptions("labels", "facade"), log=lambda _: None)
    rc = read_run_config(run)
    assert rc.spec.name == "pix2pix" and rc.train.size == 256 and rc.untrained(0) == {}
    x = input_for("unet_256")
    with torch.no_grad():
        imported = generator_of(run, "G").eval()(x)
        independent = unet_forward(state, x)
    assert (imported - independent).abs().max() <= 1e-4
    assert imported.std() > 0.05 and (imported.abs() < 0.9).float().mean() > 0.5

    onnx_file = tmp_path / "facades.onnx"
    result = cli("import", "reference", pth, "--onnx", onnx_file, "--domain-a", "labels",
                 "--domain-b", "facade")
    assert result.exit_code == 0, result.output
    assert "unet_256 (ngf 8, batch norm)" in result.output and "eval mode" in result.output
    model = ModelSession(onnx_file, provider="cpu", log=lambda _: None)
    assert (model.info.model, model.info.domain_from, model.info.domain_to) == \
        ("pix2pix", "labels", "facade")
    assert np.abs(model.run(x.numpy()) - independent.numpy()).max() <= 1e-4
    shown = cli("inspect", onnx_file).output
    assert "gantool.mode" in shown and "running statistics, dropout off" in shown


def test_a_pix2pix_generator_comes_alone(cli, tmp_path):
    g = save(pix2pix_state(), tmp_path / "g.pth")
    result = cli("import", "reference", g, g, "-o", tmp_path / "run")
    assert result.exit_code == 1 and "translates one way" in result.output
    assert not (tmp_path / "run").exists()


# -- anything else is one clear line ---------------------------------------------------------
class WholeModel(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 3, 1)


def _truncated(path: Path, legacy_format: bool = False) -> Path:
    full = save(reference_state("resnet_6blocks"), path.with_suffix(".full"), legacy_format)
    data = full.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _batch_norm_resnet(path: Path) -> Path:
    """A ResNet generator with batch norm (``--netG resnet_6blocks --norm batch``)."""
    state = reference_state("resnet_6blocks", legacy=True)
    for key in [k for k in state if k.endswith(".running_mean")]:
        state[key.replace("running_mean", "weight")] = torch.ones_like(state[key])
    return save(state, path)


UNSUPPORTED = {
    "resnet-batch-norm": (_batch_norm_resnet, "ResNet generator with batch norm"),
    "whole-model": (lambda p: torch.save(WholeModel(), p), "pickled Python object"),
    "random-dict": (lambda p: save({"alpha": torch.ones(3), "beta": torch.zeros(2)}, p),
                    "not of a CycleGAN generator"),
    "nested": (lambda p: torch.save({"epoch": 3, "net": {}}, p), "not a state dict of tensors"),
    "tensor": (lambda p: torch.save(torch.ones(3), p), "holds a Tensor, not a state dict"),
    "truncated": (_truncated, "truncated or not a PyTorch checkpoint"),
    "truncated-legacy": (lambda p: _truncated(p, legacy_format=True),
                         "truncated or not a PyTorch checkpoint"),
    "text": (lambda p: p.write_text("hello"), "truncated or not a PyTorch checkpoint"),
    "garbage": (lambda p: p.write_bytes(b"garbage"), "truncated or not a PyTorch checkpoint"),
    "discriminator": (lambda p: save(reference_state("basic_D"), p), "discriminator, not a generator"),
}


@pytest.mark.parametrize("kind", list(UNSUPPORTED))
def test_other_files_get_one_clear_line(cli, tmp_path, kind):
    make, phrase = UNSUPPORTED[kind]
    path = tmp_path / "latest_net_G.pth"
    make(path)
    result = cli("import", "reference", path, "-o", tmp_path / "run")
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and phrase in lines[0], result.output
    assert str(path) in lines[0]
    assert not (tmp_path / "run").exists()


def test_missing_inputs_and_mixed_architectures(cli, tmp_path):
    result = cli("import", "reference", tmp_path / "nope.pth")
    assert result.exit_code == 1 and "no such file" in result.output
    result = cli("import", "reference", tmp_path)
    assert result.exit_code == 1 and "no latest_net_G_A.pth or latest_net_G.pth" in result.output
    a = save(reference_state("resnet_9blocks"), tmp_path / "a.pth")
    b = save(reference_state("resnet_6blocks"), tmp_path / "b.pth")
    result = cli("import", "reference", a, b, "-o", tmp_path / "run")
    assert result.exit_code == 1 and "the two networks differ" in result.output
    result = cli("import", "reference", a, "--size", "30", "-o", tmp_path / "run")
    assert result.exit_code == 1 and "needs a multiple of 4" in result.output


class Payload:
    """Unpickling this runs ``os.mkdir(marker)``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


def test_a_pickle_that_runs_code_is_refused_and_runs_nothing(cli, tmp_path):
    marker = tmp_path / "code-ran"
    evil = tmp_path / "latest_net_G.pth"
    torch.save({"model.1.weight": torch.ones(1), "x": Payload(marker)}, evil)
    # The payload is live: plain unpickling runs it.
    torch.load(evil, weights_only=False)
    assert marker.is_dir()
    marker.rmdir()

    result = cli("import", "reference", evil, "-o", tmp_path / "run")
    assert result.exit_code == 1 and "never runs code from a file" in result.output
    assert not marker.exists()
    assert not (tmp_path / "run").exists()


def test_the_commands_other_options_are_exactly_the_import_options():
    # The command hands them to ImportOptions by name: a renamed flag must fail here.
    from translator.plugins.cyclegan.commands import reference_command
    from translator.plugins.cyclegan.importer import ImportOptions

    own = {"sources", "run_dir", "onnx_path", "epoch"}
    passed_on = {param.name for param in reference_command.params} - own
    assert passed_on == {field.name for field in dataclasses.fields(ImportOptions)}


def test_the_command_comes_from_the_plugin_and_its_help_skips_torch():
    import subprocess
    import sys

    code = ("import sys\nfrom translator.cli import main\n"
            "try:\n    main(['import', 'reference', '--help'])\nexcept SystemExit:\n    pass\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "weights_only=True" in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "False"
