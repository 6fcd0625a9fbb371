"""The model contract (translator.testing.check_model) over every registered model.

A new model, built in or from a plugin, is covered by registering it: nothing to add here.
The example plugins run the same check in tests/test_example_plugin.py.
"""

from __future__ import annotations

import pytest
from export_helpers import model_names

from translator.testing import ContractError, check_model


@pytest.mark.parametrize("name", model_names())
def test_every_registered_model_keeps_the_contract(name, tmp_path):
    report = check_model(name, tmp_path)
    assert report.exported and all(p.is_file() for p in report.exported)


def test_the_check_catches_a_model_that_does_not_resume_exactly(tmp_path, monkeypatch):
    # Image pools are random state beyond the weights: a model that forgets to restore them
    # resumes with other pool contents, and the check must say so.
    from translator.plugins.cyclegan.model import CycleGAN

    monkeypatch.setattr(CycleGAN, "load_extra_state", lambda self, state: None)
    with pytest.raises(ContractError, match="resumed after step 1 ends with other weights"):
        check_model("cyclegan", tmp_path, options={"pool_size": 1})


def test_the_check_catches_a_model_that_does_not_learn(tmp_path, monkeypatch):
    from translator.plugins.dcgan.model import NoiseGAN

    step = NoiseGAN.train_step

    def frozen_generator(self, batch, ctx):
        saved = {k: v.clone() for k, v in self.nets["G"].state_dict().items()}
        losses = step(self, batch, ctx)
        self.nets["G"].load_state_dict(saved)
        return losses

    monkeypatch.setattr(NoiseGAN, "train_step", frozen_generator)
    with pytest.raises(ContractError, match="left generator 'generator' unchanged"):
        check_model("dcgan", tmp_path)


@pytest.mark.parametrize("name", ["cyclegan", "cyclegan-mobile"])
def test_the_resize_upsampling_keeps_the_contract(name, tmp_path):
    # --upsample resize: a variant of two generators' upsampling layers, with its own export.
    report = check_model(name, tmp_path, options={"upsample": "resize"})
    assert report.exported


def test_the_unet_refuses_the_resize_upsampling(run_cli, tmp_path):
    result = run_cli("train", "cyclegan-unet", "--data", "demo", "--upsample", "resize",
                     "--steps", "1", "--out", tmp_path / "r")
    assert result.exit_code == 2 and "transpose" in result.output
