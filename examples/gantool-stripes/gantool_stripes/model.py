"""The networks and the training step of ``mini-cyclegan``. Only gantool's public API is used:
:class:`translator.training.gan.GANModel` and its helpers."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from translator.training.gan import (
    ExportableGenerator,
    GANModel,
    StepContext,
    adam,
    init_normal,
    set_requires_grad,
)


def generator(width: int) -> nn.Sequential:
    """Encoder-decoder with one stride-2 step down and one up: sides must be even."""
    return nn.Sequential(
        nn.Conv2d(3, width // 2, 3, 1, 1), nn.InstanceNorm2d(width // 2), nn.ReLU(),
        nn.Conv2d(width // 2, width, 4, 2, 1), nn.InstanceNorm2d(width), nn.ReLU(),
        nn.Conv2d(width, width, 3, 1, 1), nn.InstanceNorm2d(width), nn.ReLU(),
        nn.ConvTranspose2d(width, width // 2, 4, 2, 1), nn.InstanceNorm2d(width // 2), nn.ReLU(),
        nn.Conv2d(width // 2, 3, 3, 1, 1), nn.Tanh(),
    )


def discriminator(width: int) -> nn.Sequential:
    """A small PatchGAN: one score per overlapping patch, as raw logits."""
    return nn.Sequential(
        nn.Conv2d(3, width // 2, 4, 2, 1), nn.LeakyReLU(0.2),
        nn.Conv2d(width // 2, width, 4, 2, 1), nn.InstanceNorm2d(width), nn.LeakyReLU(0.2),
        nn.Conv2d(width, 1, 3, 1, 1),
    )


def lsgan(pred: torch.Tensor, real: bool) -> torch.Tensor:
    return F.mse_loss(pred.float(), torch.full_like(pred.float(), 1.0 if real else 0.0))


class MiniCycleGAN(GANModel):
    """``G_A``: A -> B, ``G_B``: B -> A; ``D_A`` judges domain B, ``D_B`` domain A."""

    kind = "translation"
    size_multiple = 2  # one stride-2 step down and one up

    def __init__(self, config) -> None:
        super().__init__(config)
        for name in ("G_A", "G_B"):
            self.nets[name] = generator(config.width)
        for name in ("D_A", "D_B"):
            self.nets[name] = discriminator(config.width)
        for net in self.nets.values():
            init_normal(net)

    def configure_optimizers(self):
        nets = self.nets
        self.opt_g = adam([*nets["G_A"].parameters(), *nets["G_B"].parameters()], self.config.lr,
                          betas=(0.5, 0.999))
        self.opt_d = adam([*nets["D_A"].parameters(), *nets["D_B"].parameters()], self.config.lr,
                          betas=(0.5, 0.999))
        return {"G": self.opt_g, "D": self.opt_d}

    def configure_schedulers(self, optimizers, total_steps):
        if self.config.decay == "none":
            return {}
        # A plain function (not a lambda bound to self): LambdaLR's state then holds numbers only.
        return {name: torch.optim.lr_scheduler.LambdaLR(opt, _linear_to_zero(total_steps))
                for name, opt in optimizers.items()}

    def train_step(self, batch, ctx: StepContext):
        G_A, G_B, D_A, D_B = (self.nets[n] for n in ("G_A", "G_B", "D_A", "D_B"))
        real_a, real_b = batch["a"], batch["b"]  # [N, 3, H, W] in [-1, 1], one per domain

        # The generators' turn: fool both discriminators and come back around the cycle.
        set_requires_grad([D_A, D_B], False)
        ctx.zero_grad(self.opt_g)
        with ctx.autocast():
            fake_b, fake_a = G_A(real_a), G_B(real_b)
            loss_gan = lsgan(D_A(fake_b), True) + lsgan(D_B(fake_a), True)
            loss_cycle = (G_B(fake_b) - real_a).abs().mean() + (G_A(fake_a) - real_b).abs().mean()
            loss_g = loss_gan + self.config.lambda_cycle * loss_cycle
            if self.config.identity:
                loss_idt = (G_A(real_b) - real_b).abs().mean() + (G_B(real_a) - real_a).abs().mean()
                loss_g = loss_g + 0.5 * self.config.lambda_cycle * loss_idt
        ctx.backward(loss_g, self.opt_g)
        ctx.step(self.opt_g)

        # The discriminators' turn, on the same generated images (detached).
        set_requires_grad([D_A, D_B], True)
        ctx.zero_grad(self.opt_d)
        with ctx.autocast():
            loss_d = (lsgan(D_A(real_b), True) + lsgan(D_A(fake_b.detach()), False)
                      + lsgan(D_B(real_a), True) + lsgan(D_B(fake_a.detach()), False)) / 2
        ctx.backward(loss_d, self.opt_d)
        ctx.step(self.opt_d)
        # Tensors, not floats: the loop reads them only at log intervals.
        return {"G": loss_gan.detach(), "cycle": loss_cycle.detach(), "D": loss_d.detach()}

    def fixed_inputs(self, examples, generator):
        # A few unaugmented test images per domain, kept for the whole run.
        return {"a": examples["a"][:4], "b": examples["b"][:4]}

    @torch.no_grad()
    def sample_grid(self, fixed):
        real_a, real_b = fixed["a"], fixed["b"]
        fake_b, fake_a = self.nets["G_A"](real_a), self.nets["G_B"](real_b)
        rows = [torch.stack(pair) for pair in zip(real_a, fake_b, strict=True)]
        rows += [torch.stack(pair) for pair in zip(real_b, fake_a, strict=True)]
        return torch.cat(rows).float().clamp(-1, 1), 2  # real | translated, two to a row

    def generators(self):
        return {direction: ExportableGenerator(
                    self.nets[net], "translation", size_multiple=self.size_multiple,
                    metadata={"architecture": f"encoder-decoder-{self.config.width}"})
                for direction, net in (("a2b", "G_A"), ("b2a", "G_B"))}


def _linear_to_zero(total_steps: int):
    def factor(step: int) -> float:
        return max(0.0, 1.0 - step / max(1, total_steps))

    return factor
