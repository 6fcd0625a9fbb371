"""Device choices that matter on GPUs, checked on the CPU: precision, backend flags, the
torchrun set-up and optimizer state that moves between devices."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from translator.errors import GantoolError
from translator.training import device


@pytest.mark.parametrize("capability, emulated, expected", [
    ((7, 5), True, torch.float16),  # Turing: is_bf16_supported() says yes, by emulation
    ((8, 0), True, torch.bfloat16),
    ((9, 0), True, torch.bfloat16),
])
def test_auto_precision_takes_bf16_only_where_it_is_native(monkeypatch, capability, emulated, expected):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: emulated)
    assert device.choose_precision("auto", torch.device("cuda", 0)) == expected
    assert device.choose_precision("bf16", torch.device("cuda", 0)) == torch.bfloat16


def test_an_indexed_gpu_under_torchrun_is_one_clear_error():
    with pytest.raises(GantoolError, match="every process on one GPU"):
        device.choose_device("cuda:0", distributed=True)


@pytest.mark.parametrize("kind, backend", [("cuda", "nccl"), ("cpu", "gloo")])
def test_process_group_waits_for_the_cache_and_binds_its_gpu(monkeypatch, kind, backend):
    import torch.distributed as dist

    calls = []
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda **kw: calls.append(kw))
    where = torch.device(kind, 1) if kind == "cuda" else torch.device("cpu")
    device.init_process_group(device.Distributed(1, 1, 2), where)
    (kwargs,) = calls
    assert kwargs["backend"] == backend and kwargs["timeout"] >= device.SETUP_TIMEOUT
    assert kwargs.get("device_id") == (where if kind == "cuda" else None)


def test_training_flags_are_restored_after_train_and_after_an_error():
    flags = torch.backends.cudnn
    before = flags.benchmark, torch.backends.cuda.matmul.allow_tf32, flags.allow_tf32

    @device.restores_backend_flags
    def trains(fail: bool) -> bool:
        device.set_training_flags(torch.device("cuda", 0), deterministic=False)
        assert flags.benchmark and flags.allow_tf32 and torch.backends.cuda.matmul.allow_tf32
        if fail:
            raise GantoolError("stop")
        return True

    assert trains(False)
    assert (flags.benchmark, torch.backends.cuda.matmul.allow_tf32, flags.allow_tf32) == before
    with pytest.raises(GantoolError):
        trains(True)
    assert (flags.benchmark, torch.backends.cuda.matmul.allow_tf32, flags.allow_tf32) == before


def test_the_gradient_penalty_runs_without_tf32():
    from translator.training.gan import gradient_penalty

    seen = []

    class Critic(nn.Linear):
        def forward(self, x):
            seen.append((torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32))
            return super().forward(x.flatten(1))

    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    try:
        gradient_penalty(Critic(12, 1), torch.randn(2, 3, 2, 2), torch.randn(2, 3, 2, 2))
        assert seen == [(False, False)]
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def test_deterministic_training_is_fp32_and_scoped_to_train(tmp_path):
    from translator.config import TrainConfig
    from translator.registry import get_registry
    from translator.training import train

    seen = []

    def on_step(done, model, losses):
        seen.append((torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark))

    spec = get_registry().model("dcgan")
    cfg = TrainConfig(model="dcgan", data="demo", size=32, batch_size=4, steps=2, device="cpu",
                      workers=0, out=str(tmp_path / "run"), deterministic=True)
    assert not torch.are_deterministic_algorithms_enabled()
    train(cfg, spec.config(ngf=8, ndf=8), progress=False, on_step=on_step)
    assert seen == [(True, False), (True, False)]
    assert not torch.are_deterministic_algorithms_enabled()
    assert not torch.is_deterministic_algorithms_warn_only_enabled()
    with pytest.raises(GantoolError, match="--deterministic trains in fp32"):
        train(TrainConfig(**{**cfg.__dict__, "precision": "bf16", "out": str(tmp_path / "r2")}),
              spec.config(ngf=8, ndf=8), progress=False)


def _adam_after_one_step(fused: bool | None, channels_last: bool) -> tuple[nn.Conv2d, torch.optim.Adam]:
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3)
    if channels_last:
        # Module.to takes memory_format at run time; torch's typed overloads leave it out.
        conv = conv.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    opt = torch.optim.Adam(conv.parameters(), lr=0.1, fused=fused)
    conv(torch.randn(2, 3, 5, 5)).square().mean().backward()
    opt.step()
    return conv, opt


def test_optimizer_state_from_another_device_follows_this_runs_optimizer():
    from translator.training.state import _load_optimizer

    # Saved by an optimizer of another kind and layout (a GPU's channels-last, unfused) ...
    _, other = _adam_after_one_step(fused=None, channels_last=True)
    saved = other.state_dict()
    assert saved["state"][0]["exp_avg"].is_contiguous(memory_format=torch.channels_last)
    # ... loaded here, where this run's optimizer is fused and its parameters contiguous.
    conv, opt = _adam_after_one_step(fused=True, channels_last=False)
    _load_optimizer(opt, saved)
    assert opt.param_groups[0]["fused"] is True
    for param, state in opt.state.items():
        assert state["exp_avg"].stride() == state["exp_avg_sq"].stride() == param.stride()
        assert torch.equal(state["exp_avg"], saved["state"][0 if param.dim() == 4 else 1]["exp_avg"])
    conv(torch.randn(2, 3, 5, 5)).square().mean().backward()
    opt.step()  # the fused kernel takes the loaded state


@pytest.mark.parametrize("amp_dtype, tf32_in_backward", [(torch.bfloat16, False), (None, True)])
def test_mixed_precision_backward_runs_float32_work_without_tf32(amp_dtype, tf32_in_backward):
    from translator.training.gan import StepContext

    seen = []

    class Spy(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x.clone()

        @staticmethod
        def backward(ctx, grad):
            seen.append((torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32))
            return grad

    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    try:
        weight = nn.Parameter(torch.ones(3))
        ctx = StepContext(torch.device("cpu"), amp_dtype)
        ctx.backward(Spy.apply(weight).sum(), torch.optim.SGD([weight], lr=0.1))
        assert seen == [(tf32_in_backward, tf32_in_backward)]
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
