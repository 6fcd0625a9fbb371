"""The CycleGAN plugin: architectures, losses, image pool, schedule, training, resume."""

from __future__ import annotations

import io
import math
import subprocess
import sys

import pytest
import torch
from torch import nn
from translator.plugins.cyclegan import (
    CycleGANConfig,
    CycleGANMobileConfig,
    CycleGANUNetConfig,
    register_models,
)
from translator.plugins.cyclegan.config import resolve_blocks, resolve_downs
from translator.plugins.cyclegan.losses import GANLoss
from translator.plugins.cyclegan.model import CycleGAN
from translator.plugins.cyclegan.networks import (
    MobileResnetGenerator,
    NLayerDiscriminator,
    ResnetGenerator,
    count_conv_macs,
    count_parameters,
)
from translator.plugins.cyclegan.pool import ImagePool
from translator.plugins.cyclegan.variants import find_variant

from translator import GantoolError, ModelSpec
from translator.training.gan import StepContext, gradient_penalty, r1_penalty

CONFIGS = {"resnet": CycleGANConfig, "unet": CycleGANUNetConfig, "mobile": CycleGANMobileConfig}
VARIANTS = list(CONFIGS)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # These networks are tiny at 32 px: a second intra-op thread gains little, and on a busy
    # machine its spin-waiting made the training tests 10x slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_model(variant: str, **overrides) -> CycleGAN:
    config = CONFIGS[variant](**{"size": 32, **overrides})
    model = CycleGAN(config, find_variant(variant))
    model.configure_optimizers()
    return model


def make_ctx(total_steps: int = 10) -> StepContext:
    ctx = StepContext(torch.device("cpu"))
    ctx.total_steps = total_steps
    return ctx


def domain(n: int, mean: float, generator: torch.Generator, size: int = 32) -> torch.Tensor:
    """Smooth random textures around a brightness ``mean`` in [-1, 1]."""
    base = torch.rand(n, 3, 8, 8, generator=generator) * 0.6 - 0.3
    texture = nn.functional.interpolate(base, size=size, mode="bilinear", align_corners=False)
    return (mean + texture).clamp(-1, 1)


def batch(generator: torch.Generator, n: int = 2) -> dict[str, torch.Tensor]:
    return {"a": domain(n, -0.6, generator), "b": domain(n, 0.6, generator)}


def roundtrip(obj):
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


# -- registration ---------------------------------------------------------------------------
def test_registers_three_translation_models():
    specs: list[ModelSpec] = []
    register_models(specs.append)
    by_name = {s.name: s for s in specs}
    assert set(by_name) == {"cyclegan", "cyclegan-unet", "cyclegan-mobile"}
    for spec in specs:
        assert spec.kind == "translation"
        assert spec.augment == "crop-flip"
        assert spec.config().size == 256
        assert spec.summary is not None
    summarize_mobile, summarize_resnet = by_name["cyclegan-mobile"].summary, by_name["cyclegan"].summary
    assert summarize_mobile is not None and summarize_resnet is not None
    summary = summarize_mobile(CycleGANMobileConfig())
    assert "M parameters" in summary and "G conv multiply-adds per 256x256" in summary
    assert "11.378 M" in summarize_resnet(CycleGANConfig())


def test_plugin_import_does_not_import_torch():
    code = "import sys, translator.plugins.cyclegan; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_depth_follows_size():
    assert resolve_blocks(CycleGANConfig(size=256)) == 9
    assert resolve_blocks(CycleGANConfig(size=128)) == 6
    assert resolve_blocks(CycleGANConfig(size=128, blocks=9)) == 9
    assert resolve_downs(CycleGANUNetConfig(size=256)) == 8
    assert resolve_downs(CycleGANUNetConfig(size=128)) == 7
    assert resolve_downs(CycleGANUNetConfig(size=32)) == 5
    assert resolve_downs(CycleGANUNetConfig(size=192)) == 6  # 192 = 3 * 2**6
    with pytest.raises(GantoolError, match="--downs must be at least 5"):
        resolve_downs(CycleGANUNetConfig(downs=4))


@pytest.mark.parametrize("name", ["lambda_cycle", "lambda_identity", "cycle_noise", "r1_weight"])
def test_negative_weights_are_refused_with_their_flag(name):
    flag = "--" + name.replace("_", "-")
    with pytest.raises(GantoolError, match=f"^{flag} must be at least 0"):
        make_model("mobile", ngf=4, ndf=8, **{name: -1.0})


# -- architectures ----------------------------------------------------------------------------
def test_parameter_counts_match_the_reference():
    with torch.device("meta"):
        gen = ResnetGenerator(n_blocks=9)
        disc = NLayerDiscriminator(n_layers=3)
    assert round(count_parameters(gen) / 1e6, 3) == 11.378
    assert round(count_parameters(disc) / 1e6, 3) == 2.765


def test_state_dict_keys_follow_the_reference_layout():
    # So that junyanz/pytorch-CycleGAN-and-pix2pix checkpoints load into our networks.
    gen_keys = set(ResnetGenerator(ngf=8, n_blocks=9).state_dict())
    assert {"model.1.weight", "model.10.conv_block.5.bias", "model.19.weight"} <= gen_keys
    assert "model.26.weight" in gen_keys and "model.27.weight" not in gen_keys
    disc_keys = set(NLayerDiscriminator(ndf=8).state_dict())
    assert disc_keys == {f"model.{i}.{p}" for i in (0, 2, 5, 8, 11) for p in ("weight", "bias")}


def test_conv_macs_counter():
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),  # 10*10 outputs * 8 ch * 3*9 = 21600
        nn.Conv2d(8, 8, 3, padding=1, groups=8),  # 10*10 * 8 * 1*9 = 7200
        nn.ConvTranspose2d(8, 4, 3, stride=2, padding=1, output_padding=1),  # 100*8 * 4*9
    )
    assert count_conv_macs(net, 10, 10) == 21600 + 7200 + 28800


def test_mobile_generator_costs_at_most_3_gmacs_at_256():
    with torch.device("meta"):
        mobile = MobileResnetGenerator(ngf=CycleGANMobileConfig.ngf, n_blocks=9)
        reference = ResnetGenerator(n_blocks=9)
    macs = count_conv_macs(mobile, 256, 256)
    assert macs <= 3e9
    assert macs * 10 < count_conv_macs(reference, 256, 256)
    assert count_parameters(mobile) < 1e6


@pytest.mark.parametrize("variant", VARIANTS)
def test_generators_keep_non_square_shapes(variant):
    model = make_model(variant, ngf=8, ndf=8)
    gens = model.generators()
    assert set(gens) == {"a2b", "b2a"}
    assert gens["a2b"].metadata["direction"] == "a2b"
    multiple = gens["a2b"].size_multiple
    assert multiple == (32 if variant == "unet" else 4)
    unit = math.lcm(multiple, 16)
    x = torch.rand(3, 3, 2 * unit, 3 * unit) * 2 - 1
    with torch.no_grad():
        for gen in gens.values():
            y = gen.module(x)
            assert y.shape == x.shape
            assert y.abs().max() <= 1
        patches = model.nets["D_A"](x)
    assert patches.shape == (3, 1, 2 * unit // 8 - 2, 3 * unit // 8 - 2)


def test_unet_example_input_avoids_a_1x1_bottleneck():
    gen = make_model("unet", ngf=8).generators()["a2b"]
    assert gen.example_input(1, 32).shape == (1, 3, 64, 64)
    assert gen.example_input(2, (64, 96)).shape == (2, 3, 64, 96)


# -- losses ---------------------------------------------------------------------------------
def test_gan_losses():
    ones = torch.ones(2, 1, 4, 4)
    assert GANLoss("lsgan")(ones, True).item() == 0
    assert GANLoss("lsgan")(ones, False).item() == 1
    assert GANLoss("vanilla")(ones * 20, True).item() < 1e-6
    assert GANLoss("hinge")(ones * 2, True).item() == 0
    assert GANLoss("hinge")(ones * 2, False).item() == 3
    assert GANLoss("hinge")(ones * 2, True, for_discriminator=False).item() == -2
    assert GANLoss("wgangp")(ones * 2, False).item() == 2
    with pytest.raises(ValueError):
        GANLoss("nope")


class LinearCritic(nn.Module):
    """D(x) = sum(w * x), with every weight 0.5: its gradient is w at every image."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.full((1, 3, 4, 4), 0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.w).flatten(1).sum(1)


def test_gradient_penalty_of_a_linear_critic():
    # The gradient is w everywhere, so the penalty is (|w| - 1)^2.
    critic = LinearCritic()
    real, fake = torch.rand(2, 3, 4, 4), torch.rand(2, 3, 4, 4)
    penalty = gradient_penalty(critic, real, fake)
    expected = (math.sqrt(48 * 0.25) - 1) ** 2
    assert penalty.item() == pytest.approx(expected, rel=1e-5)
    penalty.backward()  # the penalty trains the critic
    assert critic.w.grad is not None and critic.w.grad.abs().sum() > 0


def test_r1_penalty_of_a_linear_critic():
    # The gradient is w at every real image, so R1 is |w|^2.
    critic = LinearCritic()
    penalty = r1_penalty(critic, torch.rand(2, 3, 4, 4))
    assert penalty.item() == pytest.approx(48 * 0.25, rel=1e-5)
    penalty.backward()  # the penalty trains the critic: d|w|^2/dw = 2w
    assert critic.w.grad is not None
    assert torch.allclose(critic.w.grad, torch.ones_like(critic.w))


# -- image pool -----------------------------------------------------------------------------
def test_image_pool_fills_then_swaps_half():
    pool = ImagePool(4)
    first = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 3, 2, 2)
    assert torch.equal(pool.query(first), first)  # filling: returned as is
    assert len(pool) == 4
    torch.manual_seed(0)
    swapped = 0
    for i in range(50):
        new = torch.full((1, 3, 2, 2), 100.0 + i)
        out = pool.query(new)
        swapped += int(out[0, 0, 0, 0].item() != 100.0 + i)
        assert len(pool) == 4
    assert 10 < swapped < 40  # about half
    assert ImagePool(0).query(first) is first


def test_image_pool_state_round_trip():
    pool = ImagePool(3)
    pool.query(torch.rand(5, 3, 4, 4))
    state = roundtrip(pool.state_dict())
    restored = ImagePool(3)
    restored.load_state_dict(state)
    torch.manual_seed(1)
    expected = pool.query(torch.rand(4, 3, 4, 4))
    torch.manual_seed(1)
    assert torch.equal(restored.query(torch.rand(4, 3, 4, 4)), expected)
    empty = ImagePool(3)
    empty.load_state_dict(roundtrip(ImagePool(3).state_dict()))
    assert len(empty) == 0


# -- schedule -------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:Detected call of:UserWarning")
def test_learning_rate_constant_then_linear_to_zero():
    model = make_model("mobile", ngf=4, ndf=4, lr=1e-3)
    optimizers = model.configure_optimizers()
    schedulers = model.configure_schedulers(optimizers, total_steps=100)
    assert set(schedulers) == {"G", "D"}
    lrs = []
    for _ in range(100):
        lrs.append(optimizers["G"].param_groups[0]["lr"])
        for s in schedulers.values():
            s.step()
    assert all(lr == pytest.approx(1e-3) for lr in lrs[:50])
    decay = lrs[50:]
    steps = [a - b for a, b in zip(decay, decay[1:], strict=False)]
    assert all(d == pytest.approx(1e-3 / 50) for d in steps)  # linear
    assert optimizers["D"].param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.filterwarnings("ignore:Detected call of:UserWarning")
def test_scheduler_state_round_trips_with_weights_only():
    model = make_model("mobile", ngf=4, ndf=4, lr=1e-3)
    optimizers = model.configure_optimizers()
    schedulers = model.configure_schedulers(optimizers, total_steps=10)
    for _ in range(7):
        schedulers["G"].step()
    state = roundtrip(schedulers["G"].state_dict())
    # Resuming with more steps: the schedule follows the new total, the position is restored.
    fresh_opts = make_model("mobile", ngf=4, ndf=4, lr=1e-3).configure_optimizers()
    fresh = model.configure_schedulers(fresh_opts, total_steps=20)["G"]
    fresh.load_state_dict(state)
    assert fresh.last_epoch == 7
    fresh.step()
    assert fresh_opts["G"].param_groups[0]["lr"] == pytest.approx(1e-3)  # step 8 < 10


# -- training -------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", VARIANTS)
def test_train_steps_give_finite_losses(variant):
    torch.manual_seed(0)
    model = make_model(variant)  # the real widths, at 32 px
    ctx = make_ctx()
    g = torch.Generator().manual_seed(0)
    names = {"G_A", "G_B", "D_A", "D_B", "cycle_A", "cycle_B", "idt_A", "idt_B"}
    for step in range(2):
        ctx.global_step = step
        losses = model.train_step(batch(g), ctx)
        assert set(losses) == names
        for value in losses.values():
            assert value.dim() == 0 and not value.requires_grad and torch.isfinite(value)
    # The discriminators were frozen only while the generators learned.
    assert all(p.requires_grad for p in model.nets.parameters())
    assert len(model.pool_A) == 4


def test_discriminators_get_gradients_only_from_their_own_update():
    torch.manual_seed(0)
    model = make_model("mobile", ngf=4, ndf=8)
    updates = {"D": 0, "G": 0}
    for prefix in ("D", "G"):
        for name in (f"{prefix}_A", f"{prefix}_B"):
            for p in model.nets[name].parameters():
                p.register_post_accumulate_grad_hook(
                    lambda _p, k=prefix: updates.__setitem__(k, updates[k] + 1)
                )
    model.train_step(batch(torch.Generator().manual_seed(0)), make_ctx())
    n_d = sum(1 for k in ("D_A", "D_B") for _ in model.nets[k].parameters())
    n_g = sum(1 for k in ("G_A", "G_B") for _ in model.nets[k].parameters())
    # Once each: D is frozen during the generators' backward, fakes are detached for D's.
    assert updates == {"D": n_d, "G": n_g}


def test_mixed_precision_step():
    torch.manual_seed(0)
    model = make_model("mobile", ngf=8, ndf=8, gan_loss="wgangp")
    scalers = {id(o): torch.amp.GradScaler("cpu") for o in model.configure_optimizers().values()}
    ctx = StepContext(torch.device("cpu"), amp_dtype=torch.bfloat16, scalers=scalers)
    losses = model.train_step(batch(torch.Generator().manual_seed(0)), ctx)
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in losses.values())
    assert roundtrip(model.extra_state())["pool_B"]["images"].shape == (2, 3, 32, 32)


@pytest.mark.parametrize("gan_loss", ["vanilla", "wgangp", "hinge"])
def test_other_gan_losses_train(gan_loss):
    torch.manual_seed(0)
    model = make_model("mobile", ngf=8, ndf=16, gan_loss=gan_loss, lambda_identity=0.0)
    ctx = make_ctx()
    g = torch.Generator().manual_seed(0)
    before = [p.detach().clone() for p in model.nets["D_A"].parameters()]
    for step in range(2):
        ctx.global_step = step
        losses = model.train_step(batch(g), ctx)
    assert all(torch.isfinite(v) for v in losses.values())
    assert "idt_A" not in losses
    assert ("gp_A" in losses) == (gan_loss == "wgangp")
    after = list(model.nets["D_A"].parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))


def test_r1_weight_changes_only_the_discriminators_update():
    def one_step(r1_weight):
        torch.manual_seed(0)
        model = make_model("mobile", ngf=4, ndf=8, r1_weight=r1_weight)
        losses = model.train_step(batch(torch.Generator().manual_seed(0)), make_ctx())
        return model, losses

    plain, plain_losses = one_step(0.0)
    penalised, losses = one_step(10.0)
    assert "r1_A" not in plain_losses and losses["r1_A"] > 0 and losses["r1_B"] > 0
    for name in ("G_A", "D_A"):
        same = all(torch.equal(a, b) for a, b in zip(
            plain.nets[name].parameters(), penalised.nets[name].parameters(), strict=True))
        assert same == (name == "G_A")


@pytest.mark.parametrize("noise", [0.0, 0.5])
def test_cycle_noise_reaches_only_the_way_back(noise):
    torch.manual_seed(0)
    model = make_model("mobile", ngf=4, ndf=8, cycle_noise=noise, lambda_identity=0.0)
    translations, inputs = [], []
    model.nets["G_A"].register_forward_hook(lambda _m, _i, out: translations.append(out))
    model.nets["G_B"].register_forward_pre_hook(lambda _m, args: inputs.append(args[0]))
    model.train_step(batch(torch.Generator().manual_seed(0)), make_ctx())
    fake_b, back = translations[0], inputs[0]  # G_B's first input is G_A's translation
    assert (back - fake_b).std().item() == pytest.approx(noise, abs=0.05)


# The reference learning rate, except for the U-Net: its only way to shift the output's mean
# is the outermost transposed conv, fed by a narrow unnormalised layer, so at 2e-4 it needs
# many more steps than this test can afford.
LEARNING_RATES = {"resnet": 2e-4, "mobile": 2e-4, "unet": 2e-3}


@pytest.mark.parametrize("variant", VARIANTS)
def test_translation_learns_brightness(variant):
    """Dark domain A, bright domain B: G_A must brighten and G_B darken within 15 steps."""
    torch.manual_seed(0)
    model = make_model(variant, ngf=16, ndf=16, lr=LEARNING_RATES[variant])
    ctx = make_ctx(total_steps=15)
    g = torch.Generator().manual_seed(1)
    test_a, test_b = domain(8, -0.6, g), domain(8, 0.6, g)

    def means():
        with torch.no_grad():
            return model.nets["G_A"](test_a).mean().item(), model.nets["G_B"](test_b).mean().item()

    start_ab, start_ba = means()
    for step in range(15):
        ctx.global_step = step
        model.train_step(batch(g, n=4), ctx)
    end_ab, end_ba = means()
    # Domain means are -0.6 and +0.6; a fresh generator outputs about 0.
    assert end_ab > 0.3 and end_ab - start_ab > 0.2, (start_ab, end_ab)
    assert end_ba < -0.3 and start_ba - end_ba > 0.2, (start_ba, end_ba)


def test_sample_grid_rows():
    torch.manual_seed(0)
    model = make_model("mobile", ngf=8, ndf=8)
    g = torch.Generator().manual_seed(0)
    examples = {"a": domain(8, -0.6, g), "b": domain(6, 0.6, g)}
    fixed = model.fixed_inputs(examples, torch.Generator())
    assert fixed["a"].shape[0] == 4 and fixed["b"].shape[0] == 4
    grid, nrow = model.sample_grid(fixed)
    assert nrow == 3 and grid.shape == (24, 3, 32, 32)
    with torch.no_grad():
        fake_b = model.nets["G_A"](fixed["a"][:1])
        rec_a = model.nets["G_B"](fake_b)
        fake_a = model.nets["G_B"](fixed["b"][:1])
    assert torch.equal(grid[0], fixed["a"][0])
    assert torch.allclose(grid[1], fake_b[0], atol=1e-4)
    assert torch.allclose(grid[2], rec_a[0], atol=1e-4)
    assert torch.equal(grid[12], fixed["b"][0])
    assert torch.allclose(grid[13], fake_a[0], atol=1e-4)


def test_resume_from_saved_state_is_exact():
    """Weights, optimizers, schedulers, pools and RNG saved mid-run continue identically."""
    torch.manual_seed(0)
    model = make_model("mobile", ngf=4, ndf=8, pool_size=3)
    optimizers = model.configure_optimizers()
    schedulers = model.configure_schedulers(optimizers, total_steps=6)
    ctx = make_ctx(total_steps=6)
    g = torch.Generator().manual_seed(0)
    batches = [batch(g) for _ in range(6)]

    def run(m, opts, scheds, steps):
        out = []
        for step in steps:
            ctx.global_step = step
            out.append(m.train_step(batches[step], ctx))
            for s in scheds.values():
                s.step()
        return out

    run(model, optimizers, schedulers, range(3))
    saved = roundtrip(
        {
            "nets": model.nets.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in schedulers.items()},
            "extra": model.extra_state(),
            "rng": torch.get_rng_state(),
        }
    )
    assert all(t.device.type == "cpu" for t in (saved["extra"]["pool_A"]["images"],))
    expected = run(model, optimizers, schedulers, range(3, 6))

    torch.manual_seed(123)  # a different init: everything must come from the checkpoint
    resumed = make_model("mobile", ngf=4, ndf=8, pool_size=3)
    opts2 = resumed.configure_optimizers()
    scheds2 = resumed.configure_schedulers(opts2, total_steps=6)
    resumed.nets.load_state_dict(saved["nets"])
    for k in opts2:
        opts2[k].load_state_dict(saved["optimizers"][k])
        scheds2[k].load_state_dict(saved["schedulers"][k])
    resumed.load_extra_state(saved["extra"])
    torch.set_rng_state(saved["rng"])
    got = run(resumed, opts2, scheds2, range(3, 6))
    for want, have in zip(expected, got, strict=True):
        for name in want:
            assert torch.equal(want[name], have[name]), name


@pytest.mark.slow
def test_mobile_generator_exports_to_onnx_with_dynamic_shapes(tmp_path):
    pytest.importorskip("onnxscript")
    ort = pytest.importorskip("onnxruntime")
    gen = make_model("mobile").generators()["a2b"]
    module = gen.module.eval()
    path = tmp_path / "g.onnx"
    dims = {0: torch.export.Dim("batch"), 2: torch.export.Dim("h"), 3: torch.export.Dim("w")}
    torch.onnx.export(
        module,
        (gen.example_input(1, 32),),
        str(path),
        dynamo=True,
        external_data=False,
        dynamic_shapes={"x": dims},
    )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.rand(2, 3, 24, 40) * 2 - 1
    (out,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        assert abs(out - module(x).numpy()).max() < 1e-4
