"""pix2pix and paired data: both layouts open as pairs and train, the batch pipeline and
DiffAugment treat both halves of a pair alike, a run killed with SIGKILL resumes exactly,
export and apply, and learning on real digits (edges -> digit), read by the independent
digit classifier."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
from click.testing import Result
from PIL import Image
from safetensors.torch import load_file
from test_training import quick_compile  # noqa: F401 - the fixture, shared
from translator.plugins.datasets.digit_edges import edge_pairs
from translator.plugins.datasets.digit_reading import read_digits

from translator.config import TrainConfig
from translator.data import ImageList
from translator.data.datasets import find_dataset, open_data
from translator.data.pipeline import Augmentation, StepBatches, create_caches, to_tensor, to_uint8
from translator.registry import get_registry
from translator.training import train
from translator.training.checkpoint import find_checkpoint, list_checkpoints
from translator.training.diffaugment import DiffAugment
from translator.training.gan import StepContext
from translator.training.runs import load_model

#: A tiny pix2pix on the CPU: 32 px (a U-Net of 5 levels), narrow networks.
SMALL = ["--size", "32", "--batch-size", "2", "--ngf", "8", "--ndf", "8", "--d-layers", "2",
         "--workers", "0", "--device", "cpu", "--sample-every", "1000"]
#: Halves of 36 px: the side 32 px crops are taken from, so no resize blurs the relation.
SIDE = 36


# -- made-up pairs: B is A's negative, so a pair that came apart shows -----------------------
def _pair(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    a = rng.integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)
    return a, 255 - a


def make_aligned(root: Path, count: int = 6) -> Path:
    """The reference's aligned layout: each file A|B, in train/ and val/."""
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        (root / split).mkdir(parents=True)
        for i in range(count):
            Image.fromarray(np.concatenate(_pair(rng), axis=1)).save(root / split / f"{i}.png")
    return root


def make_matched(root: Path, count: int = 5) -> Path:
    """trainA/ and trainB/ whose files pair by name, and one file without a partner on
    each side."""
    rng = np.random.default_rng(1)
    for side in ("trainA", "trainB"):
        (root / side).mkdir(parents=True)
    for i in range(count):
        a, b = _pair(rng)
        Image.fromarray(a).save(root / "trainA" / f"{i}.png")
        Image.fromarray(b).save(root / "trainB" / f"{i}.png")
    Image.fromarray(_pair(rng)[0]).save(root / "trainA" / "lonely.png")
    Image.fromarray(_pair(rng)[0]).save(root / "trainB" / "stray.png")
    return root


def pix2pix_data(root: Path, direction: str = "AtoB") -> dict[str, ImageList]:
    return open_data(TrainConfig(model="pix2pix", data=str(root), direction=direction),
                     "translation")


def file_names(images: ImageList) -> list[str]:
    return [p.name for p in images.items if isinstance(p, Path)]


def assert_pairs_together(a: torch.Tensor, b: torch.Tensor) -> None:
    assert torch.allclose(b, -a, atol=1e-5), "a pair came apart"


# -- the two layouts ---------------------------------------------------------------------------
def test_an_aligned_folder_opens_as_pairs_and_the_direction_swaps_them(tmp_path: Path) -> None:
    root = make_aligned(tmp_path / "facades")
    assert find_dataset(str(root))[0].name == "aligned"
    domains = pix2pix_data(root)
    a, b = domains["a"], domains["b"]
    assert len(a) == len(b) == 6 and a.paired and b.paired
    file = np.asarray(Image.open(root / "train" / "0.png"))
    assert np.array_equal(a.load(0), file[:, :SIDE]) and np.array_equal(b.load(0), file[:, SIDE:])
    swapped = pix2pix_data(root, direction="BtoA")
    assert np.array_equal(swapped["a"].load(0), file[:, SIDE:])
    test = open_data(TrainConfig(model="pix2pix", data=str(root)), "translation", "test")
    first = test["a"].items[0]
    assert isinstance(first, Path) and first.parent.name == "val"  # no test/: the val/


def test_folders_pair_by_name_and_the_files_without_a_partner_are_named(tmp_path: Path) -> None:
    root = make_matched(tmp_path / "matched")
    domains = pix2pix_data(root)
    a, b = domains["a"], domains["b"]
    assert file_names(a) == file_names(b) == [f"{i}.png" for i in range(5)]
    assert all(np.array_equal(b.load(i), 255 - a.load(i)) for i in range(5))
    note = " ".join(a.notes)
    assert "2 file(s) without a partner" in note and "lonely.png" in note and "stray.png" in note
    # Unpaired models read the same folders as before: every file, no pairing.
    unpaired = open_data(TrainConfig(model="cyclegan", data=str(root)), "translation")
    assert len(unpaired["a"]) == len(unpaired["b"]) == 6 and not unpaired["a"].paired
    assert not unpaired["a"].notes


def test_a_data_set_without_pairs_is_refused(run_cli, tmp_path: Path) -> None:
    result: Result = run_cli("train", "pix2pix", "--data", "digits", "--steps", "1", *SMALL,
                             "--out", tmp_path / "run")
    assert result.exit_code == 1
    assert "holds no pairs" in result.output and "digits" in result.output
    assert not (tmp_path / "run").exists()


# -- both halves alike -------------------------------------------------------------------------
def test_the_batch_pipeline_crops_and_flips_both_halves_alike(tmp_path: Path) -> None:
    domains = pix2pix_data(make_aligned(tmp_path / "aligned"))
    augment = Augmentation("resize-and-crop", flip=True)
    batches = StepBatches(domains, 4, 32, augment, seed=3, total_steps=12,
                          caches=create_caches(domains, tmp_path / "cache", 32, augment))
    firsts = []
    for step in range(12):
        batch = batches[step]
        assert_pairs_together(batch["a"], batch["b"])
        firsts.append(batch["a"][0])
    assert len({t.sum().item() for t in firsts}) > 6, "crops and flips should vary"
    again = StepBatches(domains, 4, 32, augment, seed=3, total_steps=12, caches=batches.caches)
    assert torch.equal(again[5]["b"], batches[5]["b"])  # from the cache, the same pixels
    # The same lists unmarked are two domains: drawn apart, as for unpaired models.
    apart = {k: dataclasses.replace(v, paired=False) for k, v in domains.items()}
    batch = StepBatches(apart, 4, 32, augment, seed=3, total_steps=12)[0]
    assert not torch.allclose(batch["b"], -batch["a"], atol=1e-5)


def test_diffaugment_draws_once_for_both_halves_of_a_pair() -> None:
    spec = get_registry().model("pix2pix")
    model = spec.build(spec.config(ngf=8, ndf=8, d_layers=2, size=32))
    model.configure_optimizers()
    seen: list[torch.Tensor] = []
    model.nets["D"].register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach()))
    image = torch.rand(2, 3, 32, 32) * 2 - 1
    ctx = StepContext(torch.device("cpu"),
                      augmentation=DiffAugment("color,translation,cutout", 0, 0,
                                               torch.device("cpu")))
    model.train_step({"a": image, "b": image.clone()}, ctx)
    real_pair = seen[0]
    assert not torch.equal(real_pair[:, :3], image), "the pair should have been augmented"
    assert torch.equal(real_pair[:, :3], real_pair[:, 3:]), "one draw for input and target"


# -- training, resuming, leaving the run -------------------------------------------------------
@pytest.mark.parametrize("layout", [make_aligned, make_matched])
def test_both_layouts_train_from_the_command_line(run_cli, tmp_path: Path, layout) -> None:
    root = layout(tmp_path / "data")
    run = tmp_path / "run"
    result: Result = run_cli("train", "pix2pix", "--data", root, "--steps", "2", *SMALL,
                             "--out", run)
    assert result.exit_code == 0, result.output
    assert find_checkpoint(run / "checkpoints") is not None
    assert (run / "samples" / "step-0000002.png").is_file()
    if layout is make_matched:
        assert "without a partner of the same name" in result.output


def test_a_compiled_run_trains_and_exports(run_cli, quick_compile, tmp_path: Path) -> None:  # noqa: F811
    run = tmp_path / "run"
    result: Result = run_cli("train", "pix2pix", "--data", "digit-edges", "--steps", "2", *SMALL,
                             "--compile", "--out", run)
    assert result.exit_code == 0, result.output
    assert quick_compile and "torch.compile failed" not in result.output
    result = run_cli("export", "onnx", run, "-o", tmp_path / "p2p.onnx")
    assert result.exit_code == 0, result.output


def _gantool(*args: str | int | Path) -> list[str]:
    """The command line of a ``gantool`` process (run it outside the checkout, whose build
    leftovers could shadow the installed entry points)."""
    return [sys.executable, "-m", "translator.cli", *map(str, args)]


def test_a_run_killed_with_sigkill_resumes_exactly(tmp_path: Path) -> None:
    root = make_aligned(tmp_path / "data", count=8)
    steps = 12
    common: list[str | int | Path] = ["train", "pix2pix", "--data", root, "--steps", steps, *SMALL,
              "--checkpoint-every", "3", "--log-every", "3"]
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    done = subprocess.run(_gantool(*common, "--out", straight), cwd=tmp_path,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    proc = subprocess.Popen(_gantool(*common, "--out", interrupted), cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not (interrupted / "checkpoints" / "step-0000006").exists():
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 6 <= max(list_checkpoints(interrupted / "checkpoints")) < steps, "killed part-way"

    resumed = subprocess.run(_gantool("train", "--resume", interrupted),
                             cwd=tmp_path, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    a, b = (load_file(str(find_checkpoint(r / "checkpoints") / "weights.safetensors"))
            for r in (straight, interrupted))
    assert a.keys() == b.keys() and any("running_mean" in k for k in a)
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ"
    assert (straight / "logs" / "losses.csv").read_text() == \
        (interrupted / "logs" / "losses.csv").read_text()


def test_export_says_its_mode_and_apply_translates(run_cli, tmp_path: Path) -> None:
    root = make_aligned(tmp_path / "data")
    run = tmp_path / "run"
    # With --ema the averaged generator, its batch-norm statistics included, is exported.
    assert run_cli("train", "pix2pix", "--data", root, "--steps", "2", *SMALL, "--ema", "0.9",
                   "--out", run).exit_code == 0
    onnx_file = tmp_path / "p2p.onnx"
    result: Result = run_cli("export", "onnx", run, "-o", onnx_file)
    assert result.exit_code == 0, result.output
    assert [p.name for p in tmp_path.glob("*.onnx")] == ["p2p.onnx"]  # one direction
    shown = run_cli("inspect", onnx_file).output
    assert "gantool.mode" in shown and "dropout off" in shown and "gantool.norm" in shown
    picture = tmp_path / "in.png"
    Image.fromarray(np.asarray(Image.open(root / "val" / "0.png"))[:, :SIDE]).save(picture)
    result = run_cli("apply", "-m", onnx_file, picture, "-o", tmp_path / "out.png")
    assert result.exit_code == 0, result.output
    out = np.asarray(Image.open(tmp_path / "out.png"))
    assert out.shape == (SIDE, SIDE, 3) and out.std() > 0


#: One rank of a two-process pix2pix run: after every step it logs a fingerprint of every
#: tensor of the networks, batch-norm statistics included.
RANK_WORKER = """
import json, os, sys
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from ddp_worker import fingerprint
from translator.config import TrainConfig
from translator.registry import get_registry
from translator.training import train

rank, out = int(os.environ["RANK"]), Path(sys.argv[1])
spec = get_registry().model("pix2pix")

def on_step(done, model, losses):
    record = {"step": done, "nets": fingerprint(dict(model.nets.state_dict())),
              "losses": {k: float(v) for k, v in losses.items()}}
    with open(out / f"rank{rank}.jsonl", "a") as fh:
        fh.write(json.dumps(record) + "\\n")

cfg = TrainConfig(model="pix2pix", data="demo", device="cpu", workers=0, out=str(out / "run"),
                  steps=3, size=32, batch_size=2, log_every=1, sample_every=100,
                  checkpoint_every=100)
train(cfg, spec.config(ngf=8, ndf=8, d_layers=2), progress=False, on_step=on_step)
"""


@pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()),
                    reason="torch.distributed with gloo")
def test_two_processes_keep_one_model_batch_norm_statistics_included(tmp_path: Path) -> None:
    worker = tmp_path / "worker.py"
    worker.write_text(RANK_WORKER)
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         str(worker), str(tmp_path), str(Path(__file__).parent)],
        capture_output=True, text=True, cwd=tmp_path, timeout=240,
        env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [[json.loads(line) for line in (tmp_path / f"rank{r}.jsonl").read_text().splitlines()]
             for r in (0, 1)]
    assert [r["step"] for r in ranks[0]] == [r["step"] for r in ranks[1]] == [1, 2, 3]
    for first, second in zip(*ranks, strict=True):
        assert first["nets"] == second["nets"], f"ranks differ after step {first['step']}"
    assert ranks[0][0]["losses"] != ranks[1][0]["losses"]  # each rank saw its own images


# -- learning on real digits ---------------------------------------------------------------------
def _held_out(generator: torch.nn.Module) -> tuple[float, float]:
    """On held-out pairs: the share of translations that the classifier reads as their own
    digit, and their mean L1 distance to the real digit (images in [-1, 1])."""
    edges, digits, labels = edge_pairs("test")
    with torch.no_grad():
        made = generator.eval()(to_tensor(list(edges)))
    distance = (made - to_tensor(list(digits))).abs().mean().item()
    return float((read_digits(to_uint8(made)) == labels).mean()), distance


def _judged_real(model, pair_a: torch.Tensor) -> float:
    """The discriminator's mean logit for the generator's translation of ``pair_a``."""
    torch.manual_seed(5)  # the same dropout draw every time
    with torch.no_grad():
        fake = model.nets["G"](pair_a)
        return model.nets["D"](torch.cat([pair_a, fake], 1)).mean().item()


def test_pix2pix_learns_edges_to_digits_on_held_out_real_digits(tmp_path: Path) -> None:
    # Narrow networks, a higher learning rate and 120 steps: 10-60 s on two shared cores.
    # At this budget the L1 term does most of the teaching (the adversarial term alone gets
    # further than one might think, hence the two bounds); the adversarial term's own part
    # is checked below.
    spec = get_registry().model("pix2pix")
    options = {"ngf": 8, "ndf": 8, "lr": 1e-3, "size": 32}
    run = tmp_path / "run"
    cfg = TrainConfig(model="pix2pix", data="digit-edges", size=32, steps=120, batch_size=16,
                      out=str(run), log_every=40, sample_every=1000, checkpoint_every=1000,
                      workers=0)
    train(cfg, spec.config(**options), progress=False)
    torch.manual_seed(0)
    untrained = spec.build(spec.config(**options)).nets["G"]
    model, _, _ = load_model(run)
    (read_before, l1_before), (read_after, l1_after) = (_held_out(untrained),
                                                        _held_out(model.nets["G"]))
    # Measured: 0.00 -> 0.92 read, L1 0.74 -> 0.18; with the L1 term off 0.67 and 0.26.
    assert read_after >= read_before + 0.75, (read_before, read_after)
    assert l1_after <= 0.3 * l1_before, (l1_before, l1_after)

    # The adversarial term: one training step that weighs only it must move the generator
    # toward what the discriminator (as that step leaves it) takes for real pairs.
    model.train()
    model.config.lambda_l1 = 0.0
    model.configure_optimizers()
    edges, digits, _ = edge_pairs("train")
    batch = {"a": to_tensor(list(edges[:16])), "b": to_tensor(list(digits[:16]))}
    frozen = {k: v.clone() for k, v in model.nets["G"].state_dict().items()}
    model.train_step(batch, StepContext(torch.device("cpu")))
    moved = _judged_real(model, batch["a"])
    trained_g = {k: v.clone() for k, v in model.nets["G"].state_dict().items()}
    model.nets["G"].load_state_dict(frozen)
    stayed = _judged_real(model, batch["a"])
    model.nets["G"].load_state_dict(trained_g)
    assert moved > stayed + 0.01, (stayed, moved)
