"""TensorBoard event files beside losses.csv: the same scalars, the sample grids, no step
twice after an interrupted run resumes; training unchanged without tensorboard."""

from __future__ import annotations

import csv
import io
import sys

import pytest
from PIL import Image

from translator.config import TrainConfig
from translator.registry import get_registry
from translator.training import train

pytest.importorskip("tensorboard")


def _config(run, steps: int) -> TrainConfig:
    return TrainConfig(model="cyclegan-mobile", data="demo", size=32, steps=steps, batch_size=2,
                       out=str(run), log_every=2, sample_every=4, checkpoint_every=4)


def _model_config():
    return get_registry().model("cyclegan-mobile").config(ngf=8, ndf=8, d_layers=2)


def _csv(run) -> dict[int, dict[str, float]]:
    with open(run / "logs" / "losses.csv", newline="") as fh:
        return {int(r.pop("step")): {k: float(v) for k, v in r.items()} for r in csv.DictReader(fh)}


def _raw_events(run) -> list:
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    files = sorted((run / "logs").glob("events.out.tfevents.*"))
    return [event for f in files for event in EventFileLoader(str(f)).Load()]


def test_a_new_event_file_sorts_after_one_begun_in_the_same_second(tmp_path):
    import time

    from translator.training.tensorboard_log import TensorBoardLog

    # The name an earlier writer could have, begun this second or the next on a host whose
    # name sorts last: TensorBoard would read a file opened now before it.
    earlier = tmp_path / f"events.out.tfevents.{int(time.time()) + 1}.zzzz.1.99"
    earlier.write_bytes(b"")
    log = TensorBoardLog.open(tmp_path, resume_step=4)
    assert log is not None  # None only without tensorboard, which this module requires
    log.close()
    names = sorted(p.name for p in tmp_path.glob("events.out.tfevents.*"))
    assert len(names) == 2 and names[0] == earlier.name


def test_an_interrupted_and_resumed_run_logs_every_step_once(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    # Killed after step 6 (checkpoint at 4, losses logged at 2, 4 and 6), then resumed.
    train(_config(run, 8), _model_config(), progress=False, stop_after=6)
    train(TrainConfig(), resume=run, progress=False)

    # The resumed writer tells TensorBoard to drop what came after the checkpoint.
    starts = [e.step for e in _raw_events(run) if e.HasField("session_log")]
    assert starts == [5]
    board = EventAccumulator(str(run / "logs"), size_guidance={"images": 0, "scalars": 0})
    board.Reload()
    rows = _csv(run)
    assert sorted(rows) == [2, 4, 6, 8]
    for name in rows[2]:
        events = board.Scalars(f"train/{name}")
        assert [e.step for e in events] == [2, 4, 6, 8]
        for e in events:
            assert e.value == pytest.approx(rows[e.step][name], rel=1e-4, abs=1e-6)
    images = board.Images("samples")
    assert [e.step for e in images] == [4, 8]
    last = Image.open(io.BytesIO(images[-1].encoded_image_string))
    assert last.size == Image.open(run / "samples" / "step-0000008.png").size


def test_training_without_tensorboard_writes_the_csv_only(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    run = tmp_path / "run"
    train(_config(run, 4), _model_config(), progress=False)
    assert sorted(_csv(run)) == [2, 4]
    assert not list((run / "logs").glob("events.out.tfevents.*"))
