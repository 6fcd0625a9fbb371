"""Networks and training step of the noise-to-image GANs."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from translator.training.gan import (
    ExportableGenerator,
    GANModel,
    StepContext,
    adam,
    gradient_penalty,
    init_normal,
    set_requires_grad,
)

from . import DCGANConfig


def _levels(size: int) -> int:
    """Number of 2x up/down-sampling stages between 4x4 and ``size``."""
    return int(math.log2(size // 4))


class Generator(nn.Module):
    """``[N, latent]`` noise -> ``[N, 3, size, size]`` in [-1, 1]."""

    def __init__(self, latent_dim: int, ngf: int, size: int) -> None:
        super().__init__()
        levels = _levels(size)
        channels = [min(ngf * 8, ngf * 2 ** (levels - 1 - i)) for i in range(levels)]
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(latent_dim, channels[0], 4, 1, 0, bias=False),
            nn.BatchNorm2d(channels[0]),
            nn.ReLU(True),
        ]
        for c_in, c_out in zip(channels, channels[1:], strict=False):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False),
                       nn.BatchNorm2d(c_out), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(channels[-1], 3, 4, 2, 1, bias=False), nn.Tanh()]
        self.latent_dim = latent_dim
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.reshape(z.shape[0], self.latent_dim, 1, 1))


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels)  # LayerNorm over (C, H, W), per sample
    return nn.Identity()


class Critic(nn.Module):
    """``[N, 3, size, size]`` -> one score (a logit, or a Wasserstein critic value) each."""

    def __init__(self, ndf: int, size: int, norm: str) -> None:
        super().__init__()
        levels = _levels(size)
        channels = [min(ndf * 8, ndf * 2**i) for i in range(levels)]
        layers: list[nn.Module] = [nn.Conv2d(3, channels[0], 4, 2, 1), nn.LeakyReLU(0.2, True)]
        for c_in, c_out in zip(channels, channels[1:], strict=False):
            layers += [nn.Conv2d(c_in, c_out, 4, 2, 1, bias=norm == "none"),
                       _norm(norm, c_out), nn.LeakyReLU(0.2, True)]
        layers += [nn.Conv2d(channels[-1], 1, 4, 1, 0)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten()


def count_parameters(config: DCGANConfig) -> tuple[int, int]:
    g = Generator(config.latent_dim, config.ngf, config.size)
    d = Critic(config.ndf, config.size, config.critic_norm)
    return sum(p.numel() for p in g.parameters()), sum(p.numel() for p in d.parameters())


class NoiseGAN(GANModel):
    """DCGAN, WGAN and WGAN-GP differ only in loss, critic norm, clipping and optimizer."""

    kind = "generation"

    def __init__(self, config: DCGANConfig) -> None:
        super().__init__(config)
        self.nets["G"] = Generator(config.latent_dim, config.ngf, config.size)
        self.nets["D"] = Critic(config.ndf, config.size, config.critic_norm)
        init_normal(self.nets)
        self.critic_streak = 0
        #: The discriminator's accuracy on the last batch (a tensor while training).
        self.last_accuracy: float | torch.Tensor = 0.5

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        c = self.config
        make: Callable[[Iterator[nn.Parameter], float], torch.optim.Optimizer]
        if c.optimizer == "rmsprop":
            make = lambda params, lr: torch.optim.RMSprop(params, lr=lr)  # noqa: E731
        else:
            make = lambda params, lr: adam(params, lr, (c.beta1, c.beta2))  # noqa: E731
        self.opt_g = make(self.nets["G"].parameters(), c.lr_g)
        self.opt_d = make(self.nets["D"].parameters(), c.lr_d)
        return {"G": self.opt_g, "D": self.opt_d}

    def _train_generator_now(self, step: int) -> bool:
        if self.config.balance == "adaptive":
            # The discriminator is losing when it ranks fewer than half of the real images
            # above their fakes; it then trains alone, up to five times in a row.
            # Reading the accuracy is this mode's one device sync per step: which network
            # trains next is decided on the host.
            if float(self.last_accuracy) < 0.5 and self.critic_streak < 5:
                return False
            return True
        return step % self.config.n_critic == self.config.n_critic - 1

    def _d_loss(self, real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
        if self.config.loss == "bce":
            return (F.binary_cross_entropy_with_logits(real_scores, torch.ones_like(real_scores))
                    + F.binary_cross_entropy_with_logits(fake_scores, torch.zeros_like(fake_scores)))
        return fake_scores.mean() - real_scores.mean()

    def _g_loss(self, fake_scores: torch.Tensor) -> torch.Tensor:
        if self.config.loss == "bce":
            return F.binary_cross_entropy_with_logits(fake_scores, torch.ones_like(fake_scores))
        return -fake_scores.mean()

    def train_step(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, torch.Tensor]:
        c = self.config
        G, D = self.nets["G"], self.nets["D"]
        real = batch["images"]
        n = real.shape[0]
        train_g = self._train_generator_now(ctx.global_step)
        out: dict[str, torch.Tensor] = {}

        if not train_g or c.balance == "fixed":
            z = torch.randn(n, c.latent_dim, device=real.device)
            set_requires_grad(D, True)
            ctx.zero_grad(self.opt_d)
            with ctx.autocast():
                seen_real, fake = ctx.augment(real, G(z).detach())
                real_scores, fake_scores = D(seen_real).float(), D(fake).float()
                loss_d = self._d_loss(real_scores, fake_scores)
            if c.gp_weight > 0:
                gp = gradient_penalty(D, seen_real, fake)
                loss_d = loss_d + c.gp_weight * gp
                out["gp"] = gp.detach()
            ctx.backward(loss_d, self.opt_d)
            ctx.step(self.opt_d)
            if c.clip > 0:
                with torch.no_grad():
                    for p in D.parameters():
                        p.clamp_(-c.clip, c.clip)
            accuracy = (real_scores > fake_scores).float().mean().detach()
            out["D"] = loss_d.detach()
            out["D_accuracy"] = accuracy
            if c.loss == "wasserstein":
                out["wasserstein"] = (real_scores.mean() - fake_scores.mean()).detach()
            if c.balance == "adaptive":
                # Averaged over ranks: every rank must pick the same network next step.
                self.last_accuracy = ctx.mean_over_ranks(accuracy)
                self.critic_streak += 1

        if train_g:
            z = torch.randn(n, c.latent_dim, device=real.device)
            set_requires_grad(D, False)
            ctx.zero_grad(self.opt_g)
            with ctx.autocast():
                fake_scores = D(ctx.augment(G(z))).float()
                loss_g = self._g_loss(fake_scores)
            ctx.backward(loss_g, self.opt_g)
            ctx.step(self.opt_g)
            set_requires_grad(D, True)
            out["G"] = loss_g.detach()
            if c.balance == "adaptive":
                self.critic_streak = 0
                # The generator moved; judge the discriminator again on this batch.
                with torch.no_grad(), ctx.autocast():
                    fooled = D(real).float() > D(G(z)).float()
                self.last_accuracy = ctx.mean_over_ranks(fooled.float().mean())
        return out

    def fixed_inputs(self, examples, generator):
        return {"noise": torch.randn(64, self.config.latent_dim, generator=generator)}

    @torch.no_grad()
    def sample_grid(self, fixed):
        return self.nets["G"](fixed["noise"]), 8

    def generators(self) -> dict[str, ExportableGenerator]:
        return {"generator": ExportableGenerator(
            self.nets["G"], "generation", latent_dim=self.config.latent_dim,
            metadata={"model_size": str(self.config.size)})}

    def extra_state(self):
        return {"critic_streak": self.critic_streak, "last_accuracy": float(self.last_accuracy)}

    def load_extra_state(self, state) -> None:
        self.critic_streak = int(state.get("critic_streak", 0))
        self.last_accuracy = float(state.get("last_accuracy", 0.5))
