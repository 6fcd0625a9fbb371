"""Runs resume from anything a crash or a hand can leave: no checkpoint yet, half-pruned
folders, a ``latest`` that points elsewhere, crafted ``state.pt`` and ``config.json``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from translator.config import TrainConfig
from translator.training import train
from translator.training.checkpoint import find_checkpoint, list_checkpoints, prune_checkpoints

SMALL = ["--size", "32", "--batch-size", "4", "--ngf", "8", "--ndf", "8", "--log-every", "2",
         "--workers", "0", "--sample-every", "1000"]


def _train(run_cli, out: Path, *extra: str) -> None:
    result = run_cli("train", "dcgan", "--data", "demo", *SMALL, "--out", out, *extra)
    assert result.exit_code == 0, result.output


def _one_error_line(output: str) -> bool:
    return "Traceback" not in output and sum(ln.startswith("Error: ") for ln in output.splitlines()) == 1


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(find_checkpoint(run / "checkpoints") / "weights.safetensors"))


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """An uninterrupted 6-step run, checkpointed every 3 steps."""
    from click.testing import CliRunner
    from translator.cli import cli

    run = tmp_path_factory.mktemp("straight") / "run"
    args = ["train", "dcgan", "--data", "demo", *SMALL, "--steps", "6", "--checkpoint-every", "3",
            "--out", str(run)]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return run


def test_a_run_killed_before_its_first_checkpoint_resumes_from_step_zero(run_cli, tmp_path, straight):
    run = tmp_path / "run"
    _train(run_cli, run, "--steps", "6", "--checkpoint-every", "3", "--log-every", "1")
    # What a kill at step 2 leaves: the config, a partial log, no checkpoint.
    for folder in list_checkpoints(run / "checkpoints").values():
        import shutil

        shutil.rmtree(folder)
    (run / "checkpoints" / "latest").unlink()
    result = run_cli("train", "--resume", run)
    assert result.exit_code == 0, result.output
    a, b = _weights(straight), _weights(run)
    assert all(torch.equal(a[k], b[k]) for k in a)
    steps = [int(r.split(",")[0]) for r in (run / "logs" / "losses.csv").read_text().splitlines()[1:]]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_pruning_renames_aside_first_and_leftovers_are_cleaned(run_cli, tmp_path, monkeypatch):
    run = tmp_path / "run"
    _train(run_cli, run, "--steps", "4", "--checkpoint-every", "1", "--keep-last", "4")
    ckpts = run / "checkpoints"
    import translator.training.checkpoint as checkpoint

    # A kill in the middle of deleting: nothing is deleted, but the folder is already gone
    # from the list of checkpoints, never half of one left under its step name.
    monkeypatch.setattr(checkpoint.shutil, "rmtree", lambda *a, **k: None)
    prune_checkpoints(ckpts, keep_last=1, history_every=0)
    assert sorted(list_checkpoints(ckpts)) == [4]
    assert not [p for p in ckpts.iterdir() if p.name.startswith("step-") and p.name != "step-0000004"]
    monkeypatch.undo()
    (ckpts / ".step-0000005.tmp").mkdir()
    _train_more = run_cli("train", "--resume", run, "--steps", "5")
    assert _train_more.exit_code == 0, _train_more.output
    assert sorted(p.name for p in ckpts.iterdir() if p.name.startswith(".")) == []


def test_a_finished_run_killed_while_pruning_is_cleaned_on_resume(run_cli, tmp_path):
    run = tmp_path / "run"
    _train(run_cli, run, "--steps", "2", "--checkpoint-every", "1", "--keep-last", "1")
    # What a kill while pruning after the final checkpoint leaves.
    leftover = run / "checkpoints" / ".step-0000001.deleting"
    leftover.mkdir()
    (leftover / "state.json").write_text("{}")
    result = run_cli("train", "--resume", run)
    assert result.exit_code != 0 and "already finished" in result.output
    assert _one_error_line(result.output)
    assert not leftover.exists()


def test_latest_cannot_point_outside_the_run(run_cli, tmp_path):
    run = tmp_path / "run"
    _train(run_cli, run, "--steps", "2", "--checkpoint-every", "1", "--keep-last", "4")
    planted = tmp_path / "weights.safetensors"
    planted.write_bytes((run / "checkpoints" / "step-0000001" / "weights.safetensors").read_bytes())
    (tmp_path / "state.pt").write_bytes((run / "checkpoints" / "step-0000001" / "state.pt").read_bytes())
    (run / "checkpoints" / "latest").write_text("../..\n")
    (run / "checkpoints" / "step-0000009").symlink_to(tmp_path, target_is_directory=True)
    assert find_checkpoint(run / "checkpoints").name == "step-0000002"
    assert sorted(list_checkpoints(run / "checkpoints")) == [1, 2]


def _good_state(run: Path) -> dict:
    return torch.load(find_checkpoint(run / "checkpoints") / "state.pt", weights_only=True)


CRAFTED_STATES = {
    "a list": lambda s: [1, 2, 3],
    "a bare tensor": lambda s: torch.zeros(3),
    "no step": lambda s: {k: v for k, v in s.items() if k != "step"},
    "optimizers=5": lambda s: {**s, "optimizers": 5},
    "rng='x'": lambda s: {**s, "rng": "x"},
    "step='abc'": lambda s: {**s, "step": "abc"},
    "step=-100": lambda s: {**s, "step": -100},
    "a wrong fixed": lambda s: {**s, "fixed": {"noise": torch.zeros(2, 2)}},
    "a short rng": lambda s: {**s, "rng": [{"torch": torch.zeros(4, dtype=torch.uint8)}]},
}


@pytest.mark.parametrize("name", list(CRAFTED_STATES))
def test_crafted_state_is_one_error_line(run_cli, tmp_path, name):
    run = tmp_path / "run"
    _train(run_cli, run, "--steps", "2")
    losses = (run / "logs" / "losses.csv").read_text()
    path = find_checkpoint(run / "checkpoints") / "state.pt"
    torch.save(CRAFTED_STATES[name](_good_state(run)), path)
    result = run_cli("train", "--resume", run, "--steps", "4")
    assert result.exit_code == 1, result.output
    assert _one_error_line(result.output) and "state.pt" in result.output
    assert (run / "logs" / "losses.csv").read_text() == losses


CRAFTED_CONFIGS = {
    "a list": [],
    "a string": "dcgan",
    "no model": {"train": {}},
    "model=5": {"model": 5, "train": {}},
    "train=[]": {"model": "dcgan", "train": []},
    "size='abc'": {"model": "dcgan", "train": {"size": "abc"}},
    "data=5": {"model": "dcgan", "train": {"data": 5}},
    "log_every=0": {"model": "dcgan", "train": {"log_every": 0}},
    "ngf='x'": {"model": "dcgan", "train": {}, "model_config": {"ngf": "x"}},
    "model_config=7": {"model": "dcgan", "train": {}, "model_config": 7},
}


@pytest.mark.parametrize("name", list(CRAFTED_CONFIGS))
def test_crafted_config_is_one_error_line(run_cli, tmp_path, name):
    run = tmp_path / "run"
    _train(run_cli, run, "--steps", "2")
    (run / "config.json").write_text(json.dumps(CRAFTED_CONFIGS[name]))
    for args in (["train", "--resume", run, "--steps", "4"], ["sample", run, "-o", tmp_path / "g.png"]):
        result = run_cli(*args)
        assert result.exit_code == 1, result.output
        assert _one_error_line(result.output) and "config.json" in result.output


def test_library_resume_without_checkpoint_uses_the_recorded_config(tmp_path, straight):
    run = tmp_path / "run"
    cfg = TrainConfig(model="dcgan", data="demo", size=32, batch_size=4, steps=6, out=str(run),
                      workers=0, log_every=2, sample_every=1000, checkpoint_every=3)
    from translator.registry import get_registry

    model_cfg = get_registry().model("dcgan").config(ngf=8, ndf=8)
    train(cfg, model_cfg, progress=False, stop_after=2)  # stopped before step 3's checkpoint
    assert list_checkpoints(run / "checkpoints") == {}
    train(TrainConfig(), resume=run, progress=False)
    a, b = _weights(straight), _weights(run)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resumed_losses_csv_matches_an_uninterrupted_run(tmp_path, straight):
    """Log rows every 2 steps, checkpoints every 3: the row at step 4 averages steps 3 and
    4 although the run resumed from step 3."""
    run = tmp_path / "run"
    cfg = TrainConfig(model="dcgan", data="demo", size=32, batch_size=4, steps=6, out=str(run),
                      workers=0, log_every=2, sample_every=1000, checkpoint_every=3)
    from translator.registry import get_registry

    model_cfg = get_registry().model("dcgan").config(ngf=8, ndf=8)
    train(cfg, model_cfg, progress=False, stop_after=5)
    with open(run / "logs" / "losses.csv", "a") as fh:
        fh.write("1")  # a row a kill cut short
    train(TrainConfig(), resume=run, progress=False)
    expected = (straight / "logs" / "losses.csv").read_text()
    assert (run / "logs" / "losses.csv").read_text() == expected


def test_a_planted_link_at_a_checkpoint_name_is_replaced_not_followed(run_cli, tmp_path):
    run = tmp_path / "run"
    _train(run_cli, run, "--steps", "2")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    (run / "checkpoints" / "step-0000004").symlink_to(outside, target_is_directory=True)
    result = run_cli("train", "--resume", run, "--steps", "4")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in outside.iterdir()) == ["keep.txt"]
    assert (outside / "keep.txt").read_text() == "keep"
    assert not (run / "checkpoints" / "step-0000004").is_symlink()
    assert find_checkpoint(run / "checkpoints").name == "step-0000004"


@pytest.mark.parametrize("failure", [
    RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 64 vs 0: "
                 "PytorchStreamWriter failed writing file data/0: file write failed"),
    OSError(28, "No space left on device"),
])
def test_a_full_disk_during_a_checkpoint_is_one_line_and_earlier_ones_stay(tmp_path, monkeypatch,
                                                                           failure):
    import torch

    from translator.errors import GantoolError
    from translator.training import checkpoint

    folder = tmp_path / "checkpoints"
    weights = {"w": torch.ones(3)}
    first = checkpoint.save_checkpoint(folder, 10, weights, {"step": 10})

    def full(*args, **kwargs):
        raise failure

    monkeypatch.setattr(checkpoint.torch, "save", full)
    with pytest.raises(GantoolError, match="no space left on the device.*earlier checkpoints are intact"):
        checkpoint.save_checkpoint(folder, 20, weights, {"step": 20})
    assert sorted(p.name for p in folder.iterdir()) == ["latest", first.name]
    assert checkpoint.list_checkpoints(folder) == {10: first}
