"""losses.csv: a loss that first shows up after the first log row still gets its column."""

from __future__ import annotations

import csv
from pathlib import Path

from translator.imaging import plot_losses
from translator.training.outputs import LossLog


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_a_loss_first_returned_later_widens_the_header(tmp_path):
    path = tmp_path / "losses.csv"
    log = LossLog(path, None)
    log.append(2, {"D": 1.0})
    log.append(4, {"D": 0.5})
    log.append(6, {"D": 0.25, "G": -3.0})
    log.append(8, {"D": 0.125})
    rows = read_rows(path)
    assert list(rows[0]) == ["step", "D", "G"]
    assert [(r["step"], r["D"], r["G"]) for r in rows] == [
        ("2", "1", ""), ("4", "0.5", ""), ("6", "0.25", "-3"), ("8", "0.125", "")]
    assert plot_losses(path, tmp_path / "losses.png") is not None
    assert not list(tmp_path.glob("*.tmp*"))


def test_resume_keeps_rows_with_empty_cells_and_drops_a_row_cut_short(tmp_path):
    path = tmp_path / "losses.csv"
    log = LossLog(path, None)
    log.append(2, {"D": 1.0})
    log.append(4, {"D": 0.5, "G": -3.0})
    log.append(6, {"D": 0.25})
    log.append(8, {"D": 0.2})
    with open(path, "a") as fh:
        fh.write("1")  # a kill while writing the next row, step 10

    resumed = LossLog(path, 6)
    assert [r["step"] for r in read_rows(path)] == ["2", "4", "6"]
    resumed.append(8, {"D": 0.3, "G": -1.0})
    rows = read_rows(path)
    assert [(r["step"], r["G"]) for r in rows] == [("2", ""), ("4", "-3"), ("6", ""), ("8", "-1")]


def test_a_wgan_run_logging_more_often_than_its_generator_steps_logs_the_generator(tmp_path):
    from translator.config import TrainConfig
    from translator.registry import get_registry
    from translator.training import train

    spec = get_registry().model("wgan")
    cfg = TrainConfig(model="wgan", data="demo", size=32, batch_size=4, steps=10, log_every=2,
                      device="cpu", workers=0, out=str(tmp_path / "run"), sample_every=1000)
    train(cfg, spec.config(ngf=8, ndf=8), progress=False)
    rows = read_rows(tmp_path / "run" / "logs" / "losses.csv")
    # The generator trains on steps 5 and 10 (1-based): the rows of steps 6 and 10.
    assert [r["step"] for r in rows] == ["2", "4", "6", "8", "10"]
    assert [r["G"] != "" for r in rows] == [False, False, True, False, True]


def test_resume_before_the_first_row_starts_an_empty_log(tmp_path):
    path = tmp_path / "losses.csv"
    LossLog(path, None)  # a run killed before its first log row leaves the file empty
    resumed = LossLog(path, 0)
    resumed.append(3, {"D": 1.0})
    assert [(r["step"], r["D"]) for r in read_rows(path)] == [("3", "1")]
