"""Augmentation: data sets that must not be mirrored, --max-images, and DiffAugment."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from translator.config import TrainConfig
from translator.data import ImageList
from translator.data.datasets import open_data
from translator.data.pipeline import Augmentation, StepBatches, limit_images, prepare
from translator.errors import GantoolError
from translator.registry import get_registry
from translator.training import train
from translator.training.augmentation import choose_augmentation
from translator.training.diffaugment import DiffAugment, resolve_policy
from translator.training.gan import StepContext
from translator.training.runs import load_model, read_run_config

TINY = {"ngf": 4, "ndf": 4, "blocks": 1}


def _choose(data: str, **flags) -> tuple[TrainConfig, Augmentation, str]:
    cfg = TrainConfig(model="cyclegan", data=data, **flags)
    domains = {key: ImageList(key, [np.zeros((8, 8, 3), np.uint8)] * 50) for key in "ab"}
    return choose_augmentation(cfg, get_registry().model("cyclegan"), domains)


def test_digits_declare_that_a_mirror_image_is_another_image():
    assert get_registry().datasets["digits"].flip_changes_meaning
    _, digits, line = _choose("digits")
    assert digits == Augmentation("resize-and-crop", flip=False)
    assert "no flip (digits: a mirrored image means something else)" in line
    _, demo, line = _choose("demo")
    assert demo == Augmentation("resize-and-crop", flip=True) and "random horizontal flip" in line
    assert _choose("demo", flip=False)[1].flip is False
    assert _choose("digits", flip=True)[1].flip is True  # the user's word wins
    assert _choose("demo", preprocess="none")[1].preprocess == "none"


def test_diffaug_auto_is_on_for_small_generation_sets_only():
    assert resolve_policy("auto", "translation", 20) == ("none", "auto: off for translation models")
    assert resolve_policy("auto", "generation", 20)[0] == "color,translation,cutout"
    assert resolve_policy("auto", "generation", 5000)[0] == "none"
    assert resolve_policy("cutout,color", "translation", 20)[0] == "cutout,color"


def _lopsided(n: int) -> ImageList:
    """Images bright on the left only: a mirrored one is bright on the right."""
    rng = np.random.default_rng(0)
    images = []
    for _ in range(n):
        img = rng.integers(0, 40, (40, 40, 3), dtype=np.uint8)
        img[:, :12] = 255
        images.append(img)
    return ImageList("lopsided", images)


def _mirrored_share(augment: Augmentation) -> float:
    batches = StepBatches({"a": _lopsided(8)}, 4, 32, augment, seed=0, total_steps=50)
    images = torch.cat([batches[s]["a"] for s in range(50)])
    left, right = images[..., :8].mean(dim=(1, 2, 3)), images[..., -8:].mean(dim=(1, 2, 3))
    return float((right > left).float().mean())


def test_no_mirrored_image_reaches_the_batches_without_flip():
    assert _mirrored_share(Augmentation("resize-and-crop", flip=False)) == 0.0
    assert 0.3 < _mirrored_share(Augmentation("resize-and-crop", flip=True)) < 0.7


def test_crop_takes_windows_at_the_images_own_scale():
    img = np.random.default_rng(0).integers(0, 255, (50, 70, 3), dtype=np.uint8)
    out = prepare(img, 32, Augmentation("crop"), np.random.default_rng(3))
    windows = [img[y:y + 32, x:x + 32] for y in range(19) for x in range(39)]
    assert any(np.array_equal(out, w) for w in windows)
    small = prepare(img[:20, :20], 32, Augmentation("crop"), np.random.default_rng(3))
    assert small.shape == (32, 32, 3)
    with pytest.raises(GantoolError, match="--preprocess"):
        Augmentation("stretch")


def _pixels(images: ImageList) -> list[np.ndarray]:
    """A domain's images as arrays, in order."""
    return [images.load(i) for i in range(len(images))]


def test_max_images_is_a_fixed_subset_of_each_domain():
    domains = open_data(TrainConfig(data="digits", domain_a="6", domain_b="9"), "translation")
    one, two = limit_images(domains, 20), limit_images(domains, 20)
    for key in ("a", "b"):
        assert len(one[key]) == 20
        assert all(np.array_equal(x, y) for x, y in zip(_pixels(one[key]), _pixels(two[key]), strict=True))
    firsts = _pixels(domains["a"])[:20]
    assert not all(np.array_equal(x, y) for x, y in zip(_pixels(one["a"]), firsts, strict=True))
    assert limit_images(domains, None) is domains
    with pytest.raises(GantoolError, match="--max-images"):
        limit_images(domains, 0)


def _train_digits(tmp_path, name: str, steps: int = 2, stop_after: int | None = None, **flags):
    spec = get_registry().model("cyclegan")
    cfg = TrainConfig(model="cyclegan", data="digits", domain_a="6", domain_b="9", size=32,
                      steps=steps, batch_size=2, out=str(tmp_path / name), log_every=1,
                      checkpoint_every=2, workers=0, **flags)
    return train(cfg, spec.config(**TINY), progress=False, stop_after=stop_after)


def test_the_loop_uses_records_and_restores_the_augmentation(tmp_path, monkeypatch, capsys):
    seen = []

    class Spy(StepBatches):
        def __init__(self, domains, batch_size, size, augment, *args, **kwargs):
            seen.append((augment, {k: len(d) for k, d in domains.items()}))
            super().__init__(domains, batch_size, size, augment, *args, **kwargs)

    monkeypatch.setattr("translator.training.setup.StepBatches", Spy)
    run = _train_digits(tmp_path, "run", max_images=12).run_dir
    assert seen[-1] == (Augmentation("resize-and-crop", flip=False), {"a": 12, "b": 12})
    assert "augmentation: preprocess resize-and-crop, no flip" in capsys.readouterr().err
    recorded = json.loads((run / "config.json").read_text())["train"]
    assert recorded["flip"] is False and recorded["preprocess"] == "resize-and-crop"
    assert recorded["max_images"] == 12 and recorded["diffaug"] == "none"

    train(TrainConfig(steps=3), resume=run, progress=False)
    assert seen[-1] == (Augmentation("resize-and-crop", flip=False), {"a": 12, "b": 12})

    # A config written before these fields existed still loads, and resumes.
    raw = json.loads((run / "config.json").read_text())
    for key in ("flip", "preprocess", "max_images", "diffaug"):
        del raw["train"][key]
    (run / "config.json").write_text(json.dumps(raw))
    assert read_run_config(run).train.flip is None
    train(TrainConfig(steps=4), resume=run, progress=False)
    assert seen[-1][0] == Augmentation("resize-and-crop", flip=False)


def test_diffaug_transforms_real_and_fake_alike_and_lets_gradients_through():
    augment = DiffAugment("color,translation,cutout", seed=0, rank=0, device=torch.device("cpu"))
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    fake = x.clone().requires_grad_(True)
    real_seen, fake_seen = augment(5, 0, x, fake)
    assert torch.equal(real_seen, fake_seen.detach()) and not torch.equal(real_seen, x)
    fake_seen.sum().backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0
    again = augment(5, 0, x)[0]
    assert torch.equal(again, real_seen)  # a function of (seed, rank, step, call)
    assert not torch.equal(augment(5, 1, x)[0], real_seen)
    assert augment(5, 0, x[:2])[0].shape == (2, 3, 16, 16)
    with pytest.raises(GantoolError, match="--diffaug"):
        DiffAugment("colour", 0, 0, torch.device("cpu"))


def test_step_context_counts_augment_calls_per_step():
    calls: list[tuple[int, int]] = []

    def record_call(step: int, call: int, *images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        calls.append((step, call))
        return images

    ctx = StepContext(torch.device("cpu"), augmentation=record_call)
    x = torch.zeros(1, 3, 4, 4)
    assert ctx.augment(x) is x
    ctx.augment(x, x)
    ctx.global_step = 1
    ctx.augment(x)
    assert calls == [(0, 0), (0, 1), (1, 0)]
    assert StepContext(torch.device("cpu")).augment(x) is x


def test_resume_with_diffaug_matches_an_uninterrupted_run(tmp_path):
    diffaug = "color,translation,cutout"
    straight = _train_digits(tmp_path, "straight", steps=6, diffaug=diffaug).run_dir
    _train_digits(tmp_path, "plain", steps=6, diffaug="none")
    stopped = _train_digits(tmp_path, "stopped", steps=6, diffaug=diffaug, stop_after=3)
    assert stopped.steps == 3
    train(TrainConfig(), resume=stopped.run_dir, progress=False)
    a, b = load_model(straight)[0].nets.state_dict(), load_model(stopped.run_dir)[0].nets.state_dict()
    plain = load_model(tmp_path / "plain")[0].nets.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], plain[k]) for k in a)  # the augmentation was really on


@pytest.mark.parametrize("name", ["cyclegan", "dcgan", "wgan-gp"])
def test_built_in_models_show_their_discriminators_only_augmented_images(name):
    spec = get_registry().model(name)
    small = {"ngf": 4, "ndf": 4, "size": 32, **({"blocks": 1} if name == "cyclegan" else {})}
    model = spec.build(spec.config(**small))
    model.configure_optimizers()
    shapes = []

    def spy(step, call, *images):
        shapes.append(len(images))
        return tuple(x * 0 for x in images)  # blank, still differentiable: the step runs

    ctx = StepContext(torch.device("cpu"), augmentation=spy)
    ctx.global_step = 4 if name == "wgan-gp" else 0  # a step where the generator learns too
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    batch = {"a": x, "b": x} if spec.kind == "translation" else {"images": x}
    model.train_step(batch, ctx)
    # Generator updates augment the fakes alone; discriminator updates real and fake together.
    expected = [1, 1, 2, 2] if name == "cyclegan" else [2, 1]
    assert shapes == expected
