"""pix2pix (Isola et al. 2017) as a :class:`GANModel`: names follow the reference so that
loss curves compare: ``G_GAN`` and ``G_L1`` (weighted) are the generator's losses,
``D_real`` and ``D_fake`` the discriminator's (its update minimises their mean).

``G`` maps the input (domain A) to the output (domain B); ``D`` judges the pair (input,
output) as six channels, so it learns whether an output fits its input, not only whether it
looks like B. With ``--diffaug`` each pair is augmented by one draw, input and output alike.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from translator.plugins.cyclegan.losses import GANLoss
from translator.plugins.cyclegan.model import UNetExportable
from translator.plugins.cyclegan.networks import NLayerDiscriminator, UnetGenerator

from translator.config import check_ranges
from translator.training.gan import (
    ExportableGenerator,
    GANModel,
    StepContext,
    adam,
    init_normal,
    linear_decay_schedulers,
    set_requires_grad,
)

from .config import Pix2PixConfig, unet_depth

#: What ``gantool inspect`` says of an exported pix2pix generator: the reference's ``--eval``.
EXPORTED_MODE = "eval: batch norm with its running statistics, dropout off (the reference's --eval)"


def build_networks(config: Pix2PixConfig) -> tuple[UnetGenerator, NLayerDiscriminator]:
    """The generator and the conditional discriminator (input and output: 6 channels)."""
    gen = UnetGenerator(3, 3, num_downs=unet_depth(config), ngf=config.ngf, batch_norm=True,
                        dropout=config.dropout)
    disc = NLayerDiscriminator(6, ndf=config.ndf, n_layers=config.d_layers, batch_norm=True)
    return gen, disc


class Pix2Pix(GANModel):
    """Paired translation A -> B; see the module docstring for names."""

    kind = "translation"

    def __init__(self, config: Pix2PixConfig) -> None:
        super().__init__(config)
        check_ranges(config)
        gen, disc = build_networks(config)
        self.nets["G"], self.nets["D"] = gen, disc
        for net in self.nets.values():
            init_normal(net, config.init_std)
        self.size_multiple: int = gen.size_multiple
        self.gan_loss = GANLoss(config.gan_loss)
        self._optimizers: dict[str, torch.optim.Optimizer] = {}

    # -- training ---------------------------------------------------------------------------
    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        cfg = self.config
        betas = (cfg.beta1, cfg.beta2)
        # An L1-only U-Net (--lambda-gan 0) trains no discriminator, so it has no optimizer.
        trained = ("G", "D") if cfg.lambda_gan > 0 else ("G",)
        self._optimizers = {name: adam(self.nets[name].parameters(), lr=cfg.lr, betas=betas)
                            for name in trained}
        return self._optimizers

    def configure_schedulers(
        self, optimizers: dict[str, torch.optim.Optimizer], total_steps: int
    ) -> dict[str, Any]:
        """Constant learning rate for ``decay_start`` of the steps, then linear to zero."""
        return linear_decay_schedulers(optimizers, total_steps, self.config.decay_start)

    def train_step(
        self, batch: dict[str, torch.Tensor], ctx: StepContext
    ) -> dict[str, torch.Tensor]:
        """The reference's step: the discriminator on one translation, then the generator."""
        if not self._optimizers:
            raise RuntimeError("call configure_optimizers() before train_step()")
        cfg = self.config
        gen, disc = self.nets["G"], self.nets["D"]
        real_a, real_b = batch["a"], batch["b"]
        with ctx.autocast():
            fake_b = gen(real_a)
        losses: dict[str, torch.Tensor] = {}
        if cfg.lambda_gan > 0:  # an L1-only U-Net has no use for a discriminator
            losses |= self._discriminator_step(ctx, real_a, real_b, fake_b.detach())

        set_requires_grad(disc, False)
        opt_g = self._optimizers["G"]
        ctx.zero_grad(opt_g)
        with ctx.autocast():
            losses["G_L1"] = F.l1_loss(fake_b.float(), real_b.float()) * cfg.lambda_l1
            loss_g = losses["G_L1"]
            if cfg.lambda_gan > 0:
                pair = torch.cat(ctx.augment(real_a, fake_b), 1)
                losses["G_GAN"] = self.gan_loss(disc(pair), True, for_discriminator=False)
                loss_g = loss_g + cfg.lambda_gan * losses["G_GAN"]
        ctx.backward(loss_g, opt_g)
        ctx.step(opt_g)
        set_requires_grad(disc, True)
        self._share_batch_statistics(ctx)
        return {name: value.detach() for name, value in losses.items()}

    def _discriminator_step(self, ctx: StepContext, real_a: torch.Tensor, real_b: torch.Tensor,
                            fake_b: torch.Tensor) -> dict[str, torch.Tensor]:
        """Real pairs against translated ones, both through one augmentation draw."""
        disc, opt_d = self.nets["D"], self._optimizers["D"]
        ctx.zero_grad(opt_d)
        real_a, real_b, fake_b = ctx.augment(real_a, real_b, fake_b)
        with ctx.autocast():
            losses = {"D_real": self.gan_loss(disc(torch.cat([real_a, real_b], 1)), True),
                      "D_fake": self.gan_loss(disc(torch.cat([real_a, fake_b], 1)), False)}
        # Halved as in the reference, which slows the discriminator relative to the generator.
        ctx.backward(0.5 * (losses["D_real"] + losses["D_fake"]), opt_d)
        ctx.step(opt_d)
        return losses

    def _share_batch_statistics(self, ctx: StepContext) -> None:
        """Batch norm's running statistics averaged over the processes of a distributed run:
        gradients are averaged at each step, but statistics each rank measured on its own
        images would drift apart, and the rank that saves would speak for itself alone."""
        if ctx.world_size == 1:
            return
        stats = [buf for name, buf in self.nets.named_buffers()
                 if name.endswith(("running_mean", "running_var"))]
        flat = ctx.mean_over_ranks(torch._utils._flatten_dense_tensors(stats))
        for buf, mean in zip(stats, torch._utils._unflatten_dense_tensors(flat, stats),
                             strict=True):
            buf.copy_(mean)

    # -- samples ------------------------------------------------------------------------------
    def fixed_inputs(
        self, examples: dict[str, torch.Tensor], generator: torch.Generator
    ) -> dict[str, torch.Tensor]:
        """At most 8 pairs: 8 rows of 3 make a readable grid."""
        return {key: examples[key][:8] for key in ("a", "b")}

    @torch.no_grad()
    def sample_grid(self, fixed: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        """Rows ``input | output | target``, the output as it is exported (eval mode)."""
        device = next(self.parameters()).device
        was_training = self.training
        self.eval()
        try:
            real_a, real_b = fixed["a"].to(device), fixed["b"].to(device)
            fake_b = self.nets["G"](real_a)
        finally:
            self.train(was_training)
        rows = [torch.stack(t) for t in zip(real_a, fake_b, real_b, strict=True)]
        return torch.cat(rows).float().clamp(-1, 1), 3

    # -- leaving the run ----------------------------------------------------------------------
    def generators(self) -> dict[str, ExportableGenerator]:
        """The one direction pix2pix learns (``--direction BtoA`` swaps the data instead)."""
        metadata = {"direction": "a2b", "architecture": f"unet_{2 ** unet_depth(self.config)}",
                    "norm": "batch", "mode": EXPORTED_MODE}
        gen: nn.Module = self.nets["G"]
        return {"a2b": UNetExportable(gen, kind="translation", size_multiple=self.size_multiple,
                                      metadata=metadata)}
