"""Flags given with ``--resume`` are honoured (steps, epochs, device, intervals) or
refused by name in one line; none is dropped in silence."""

from __future__ import annotations

import csv

import pytest

from translator.training.checkpoint import list_checkpoints

SMALL = ["--size", "32", "--batch-size", "1", "--ngf", "4", "--ndf", "8", "--workers", "0",
         "--sample-every", "1000"]


def _one_error_line(output: str) -> bool:
    return "Traceback" not in output and sum(ln.startswith("Error: ") for ln in output.splitlines()) == 1


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished 4-step CycleGAN run."""
    from click.testing import CliRunner
    from translator.cli import cli

    run = tmp_path_factory.mktemp("resume-flags") / "run"
    args = ["train", "cyclegan-mobile", "--data", "demo", *SMALL, "--steps", "4", "--out", str(run)]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return run


def _copy(finished, tmp_path):
    import shutil

    shutil.copytree(finished, tmp_path / "run")
    return tmp_path / "run"


def _logged_steps(run) -> list[int]:
    with open(run / "logs" / "losses.csv") as fh:
        return [int(row["step"]) for row in csv.DictReader(fh)]


@pytest.mark.parametrize("model", [[], ["cyclegan-mobile"]], ids=["train", "train MODEL"])
def test_steps_and_intervals_given_with_resume_are_honoured(run_cli, finished, tmp_path, model):
    run = _copy(finished, tmp_path)
    order = (["train", *model, "--resume", run] if model else ["train", "--resume", run])
    result = run_cli(*order, "--steps", "7", "--log-every", "1", "--checkpoint-every", "1",
                     "--keep-last", "2", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert sorted(list_checkpoints(run / "checkpoints")) == [6, 7]
    assert _logged_steps(run) == [4, 5, 6, 7]


@pytest.mark.parametrize(("flag", "recorded"), [(["--lr", "0.5"], "0.0002"), (["--size", "64"], "32"),
                                                (["--ngf", "8"], "4"), (["--seed", "3"], "0")])
def test_a_flag_that_cannot_change_is_refused_by_name(run_cli, finished, tmp_path, flag, recorded):
    run = _copy(finished, tmp_path)
    result = run_cli("train", "cyclegan-mobile", "--resume", run, "--steps", "6", *flag)
    assert result.exit_code == 1 and _one_error_line(result.output), result.output
    assert f"{flag[0]} cannot change on --resume (the run was trained with {recorded})" in result.output
    assert sorted(list_checkpoints(run / "checkpoints")) == [4]


def test_a_flag_repeating_the_recorded_value_is_accepted(run_cli, finished, tmp_path):
    run = _copy(finished, tmp_path)
    result = run_cli("train", "cyclegan-mobile", "--resume", run, "--steps", "5", "--size", "32",
                     "--lr", "0.0002", "--data", "demo")
    assert result.exit_code == 0, result.output
    assert max(list_checkpoints(run / "checkpoints")) == 5


def test_a_finished_run_given_as_many_steps_says_more_are_needed(run_cli, finished, tmp_path):
    run = _copy(finished, tmp_path)
    result = run_cli("train", "cyclegan-mobile", "--resume", run, "--steps", "4")
    assert result.exit_code == 1 and _one_error_line(result.output), result.output
    assert "pass --steps above 4" in result.output
