"""The networks and the training step. Only the public gantool API is used."""

import torch
import torch.nn.functional as F
from torch import nn

from translator.training.gan import ExportableGenerator, GANModel, StepContext, init_normal, set_requires_grad


def _generator(latent_dim: int, width: int, size: int) -> nn.Sequential:
    ups = 3 if size == 32 else 4  # 4x4 -> 32x32 or 64x64
    layers = [nn.Unflatten(1, (latent_dim, 1, 1)),
              nn.ConvTranspose2d(latent_dim, width, 4, 1, 0), nn.BatchNorm2d(width), nn.ReLU()]
    channels = width
    for _ in range(ups - 1):
        layers += [nn.ConvTranspose2d(channels, channels // 2, 4, 2, 1),
                   nn.BatchNorm2d(channels // 2), nn.ReLU()]
        channels //= 2
    layers += [nn.ConvTranspose2d(channels, 3, 4, 2, 1), nn.Tanh()]
    return nn.Sequential(*layers)


def _discriminator(width: int, size: int) -> nn.Sequential:
    downs = 3 if size == 32 else 4
    layers: list[nn.Module] = []
    channels_in, channels = 3, width // 2 ** (downs - 1)
    for _ in range(downs):
        layers += [nn.utils.spectral_norm(nn.Conv2d(channels_in, channels, 4, 2, 1)),
                   nn.LeakyReLU(0.2)]
        channels_in, channels = channels, channels * 2
    layers += [nn.Flatten(), nn.Linear(channels_in * 16, 1)]
    return nn.Sequential(*layers)


class HingeGAN(GANModel):
    kind = "generation"

    def __init__(self, config) -> None:
        super().__init__(config)
        self.nets["G"] = _generator(config.latent_dim, config.width, config.size)
        self.nets["D"] = _discriminator(config.width, config.size)
        init_normal(self.nets["G"])

    def configure_optimizers(self):
        betas = (0.0, 0.9)
        self.opt_g = torch.optim.Adam(self.nets["G"].parameters(), self.config.lr, betas=betas)
        self.opt_d = torch.optim.Adam(self.nets["D"].parameters(), self.config.lr, betas=betas)
        return {"G": self.opt_g, "D": self.opt_d}

    def train_step(self, batch, ctx: StepContext):
        G, D = self.nets["G"], self.nets["D"]
        real = batch["images"]
        z = torch.randn(real.shape[0], self.config.latent_dim, device=real.device)

        set_requires_grad(D, True)
        ctx.zero_grad(self.opt_d)
        with ctx.autocast():
            fake = G(z)
            # gantool's --diffaug: one random draw for both, differentiable.
            seen_real, seen_fake = ctx.augment(real, fake.detach())
            loss_d = F.relu(1 - D(seen_real)).mean() + F.relu(1 + D(seen_fake)).mean()
        ctx.backward(loss_d, self.opt_d)
        ctx.step(self.opt_d)

        set_requires_grad(D, False)
        ctx.zero_grad(self.opt_g)
        with ctx.autocast():
            loss_g = -D(ctx.augment(fake)).mean()
        ctx.backward(loss_g, self.opt_g)
        ctx.step(self.opt_g)
        return {"D": loss_d.detach(), "G": loss_g.detach()}

    def fixed_inputs(self, examples, generator):
        return {"noise": torch.randn(36, self.config.latent_dim, generator=generator)}

    @torch.no_grad()
    def sample_grid(self, fixed):
        return self.nets["G"](fixed["noise"]), 6

    def generators(self):
        return {"generator": ExportableGenerator(self.nets["G"], "generation",
                                                 latent_dim=self.config.latent_dim)}
