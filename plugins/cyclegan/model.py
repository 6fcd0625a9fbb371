"""CycleGAN (Zhu et al., 2017): two generators, two PatchGAN discriminators, cycle loss.

Names follow the reference implementation so that loss curves and checkpoints compare:

- ``G_A`` translates A -> B and ``G_B`` translates B -> A;
- ``D_A`` judges domain B (real B against ``G_A``'s output), ``D_B`` judges domain A;
- losses ``G_A``/``G_B`` are the generators' adversarial losses, ``D_A``/``D_B`` the
  discriminators', ``cycle_A = |G_B(G_A(a)) - a|``, ``idt_A = |G_A(b) - b|`` (weighted).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from translator.config import check_ranges
from translator.training.gan import (
    ExportableGenerator,
    GANModel,
    StepContext,
    adam,
    gradient_penalty,
    init_normal,
    linear_decay_schedulers,
    r1_penalty,
    set_requires_grad,
)

from .config import CycleGANConfig
from .losses import GANLoss
from .networks import (
    MobileResnetGenerator,
    NLayerDiscriminator,
    ResnetGenerator,
    UnetGenerator,
)
from .pool import ImagePool

#: Each variant's generator; every one says the multiple its sides need (``size_multiple``).
Generator = ResnetGenerator | UnetGenerator | MobileResnetGenerator


class GeneratorFamily(Protocol):
    """What a CycleGAN takes from its variant (a row of :data:`.variants.VARIANTS`): the
    generator both directions use, its name and the wrapper it is exported in. A protocol,
    so that this module never imports the table that imports it."""

    def generator(self, config: CycleGANConfig, /) -> Generator: ...

    def architecture(self, config: CycleGANConfig, /) -> str: ...

    def exportable(self) -> type[ExportableGenerator]: ...


def build_discriminator(config: CycleGANConfig) -> nn.Module:
    return NLayerDiscriminator(3, ndf=config.ndf, n_layers=config.d_layers)


@dataclass
class UNetExportable(ExportableGenerator):
    """A U-Net generator for export, whose example input is at least ``2 * size_multiple``.

    At exactly ``size_multiple`` the innermost feature map is 1x1, and ``torch.export``
    specializes dimensions of size 1, so the exported graph would accept that one size
    only. The exported graph still runs at ``size_multiple``.
    """

    def example_input(self, batch: int, size: int | tuple[int, int]) -> torch.Tensor:
        h, w = (size, size) if isinstance(size, int) else size
        floor = 2 * self.size_multiple
        return super().example_input(batch, (max(h, floor), max(w, floor)))


class CycleGAN(GANModel):
    """CycleGAN with a ResNet, U-Net or mobile generator; see the module docstring for names."""

    kind = "translation"

    def __init__(self, config: CycleGANConfig, variant: GeneratorFamily) -> None:
        super().__init__(config)
        # The bounds and choices of the config's fields, also for callers of the library.
        check_ranges(config)
        self.variant = variant
        generator_a = self.variant.generator(config)
        self.nets["G_A"] = generator_a
        self.nets["G_B"] = self.variant.generator(config)
        self.nets["D_A"] = build_discriminator(config)
        self.nets["D_B"] = build_discriminator(config)
        for net in self.nets.values():
            init_normal(net, config.init_std)
        self.size_multiple: int = generator_a.size_multiple
        self.gan_loss = GANLoss(config.gan_loss)
        # pool_A holds generated A images (G_B's output), which D_B judges; pool_B likewise.
        self.pool_A = ImagePool(config.pool_size)
        self.pool_B = ImagePool(config.pool_size)
        self._optimizers: dict[str, torch.optim.Optimizer] = {}

    # -- training ---------------------------------------------------------------------------
    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """One Adam for both generators and one for both discriminators, as the reference."""
        cfg = self.config
        betas = (cfg.beta1, cfg.beta2)
        g_params = [*self.nets["G_A"].parameters(), *self.nets["G_B"].parameters()]
        d_params = [*self.nets["D_A"].parameters(), *self.nets["D_B"].parameters()]
        self._optimizers = {
            "G": adam(g_params, lr=cfg.lr, betas=betas),
            "D": adam(d_params, lr=cfg.lr, betas=betas),
        }
        return self._optimizers

    def configure_schedulers(
        self, optimizers: dict[str, torch.optim.Optimizer], total_steps: int
    ) -> dict[str, Any]:
        """Constant learning rate for ``decay_start`` of the steps, then linear to zero."""
        return linear_decay_schedulers(optimizers, total_steps, self.config.decay_start)

    def train_step(
        self, batch: dict[str, torch.Tensor], ctx: StepContext
    ) -> dict[str, torch.Tensor]:
        """The reference's step: both generators on one loss, then both discriminators."""
        if not self._optimizers:
            raise RuntimeError("call configure_optimizers() before train_step()")
        cfg = self.config
        opt_g, opt_d = self._optimizers["G"], self._optimizers["D"]
        g_a, g_b = self.nets["G_A"], self.nets["G_B"]
        d_a, d_b = self.nets["D_A"], self.nets["D_B"]
        real_a, real_b = batch["a"], batch["b"]

        # Generators. The discriminators are frozen so that no gradient is computed for them.
        set_requires_grad([d_a, d_b], False)
        ctx.zero_grad(opt_g)
        with ctx.autocast():
            fake_b = g_a(real_a)
            rec_a = g_b(self._with_cycle_noise(fake_b))
            fake_a = g_b(real_b)
            rec_b = g_a(self._with_cycle_noise(fake_a))
            losses = {
                "G_A": self.gan_loss(d_a(ctx.augment(fake_b)), True, for_discriminator=False),
                "G_B": self.gan_loss(d_b(ctx.augment(fake_a)), True, for_discriminator=False),
                "cycle_A": F.l1_loss(rec_a.float(), real_a.float()) * cfg.lambda_cycle,
                "cycle_B": F.l1_loss(rec_b.float(), real_b.float()) * cfg.lambda_cycle,
            }
            if cfg.lambda_identity > 0:
                # G_A should leave an image that is already in B unchanged (colour stability).
                w = cfg.lambda_cycle * cfg.lambda_identity
                losses["idt_A"] = F.l1_loss(g_a(real_b).float(), real_b.float()) * w
                losses["idt_B"] = F.l1_loss(g_b(real_a).float(), real_a.float()) * w
            loss_g = sum(losses.values())
        ctx.backward(loss_g, opt_g)
        ctx.step(opt_g)

        # Discriminators, on a history of generated images.
        set_requires_grad([d_a, d_b], True)
        ctx.zero_grad(opt_d)
        # The discriminators see real and pooled images through the same augmentation.
        real_b, pooled_b = ctx.augment(real_b, self.pool_B.query(fake_b.detach()))
        real_a, pooled_a = ctx.augment(real_a, self.pool_A.query(fake_a.detach()))
        with ctx.autocast():
            loss_d_a = self._discriminator_loss(d_a, real_b, pooled_b)
            loss_d_b = self._discriminator_loss(d_b, real_a, pooled_a)
        if self.gan_loss.needs_gradient_penalty:
            gp_a = gradient_penalty(d_a, real_b, pooled_b)
            gp_b = gradient_penalty(d_b, real_a, pooled_a)
            losses["gp_A"], losses["gp_B"] = gp_a.detach(), gp_b.detach()
            loss_d_a = loss_d_a + cfg.gp_weight * gp_a
            loss_d_b = loss_d_b + cfg.gp_weight * gp_b
        if cfg.r1_weight > 0:
            r1_a, r1_b = r1_penalty(d_a, real_b), r1_penalty(d_b, real_a)
            losses["r1_A"], losses["r1_B"] = r1_a.detach(), r1_b.detach()
            loss_d_a = loss_d_a + cfg.r1_weight / 2 * r1_a
            loss_d_b = loss_d_b + cfg.r1_weight / 2 * r1_b
        # One backward for both: their parameters are disjoint, so the gradients are the same.
        ctx.backward(loss_d_a + loss_d_b, opt_d)
        ctx.step(opt_d)

        losses["D_A"], losses["D_B"] = loss_d_a, loss_d_b
        return {name: value.detach() for name, value in losses.items()}

    def _with_cycle_noise(self, translation: torch.Tensor) -> torch.Tensor:
        """The translation as the way back sees it: with ``cycle_noise``, faint patterns that
        could carry the input (Chu et al. 2017, "CycleGAN, a master of steganography") drown
        in noise, so reconstructing it must rely on what a viewer sees."""
        if self.config.cycle_noise <= 0:
            return translation
        return translation + self.config.cycle_noise * torch.randn_like(translation)

    def _discriminator_loss(
        self, net: nn.Module, real: torch.Tensor, fake: torch.Tensor
    ) -> torch.Tensor:
        # Halved as in the reference, which slows the discriminator relative to the generator.
        return 0.5 * (self.gan_loss(net(real), True) + self.gan_loss(net(fake), False))

    # -- samples ------------------------------------------------------------------------------
    def fixed_inputs(
        self, examples: dict[str, torch.Tensor], generator: torch.Generator
    ) -> dict[str, torch.Tensor]:
        """At most 4 images per domain: 8 rows of 3 make a readable grid."""
        return {key: examples[key][:4] for key in ("a", "b")}

    @torch.no_grad()
    def sample_grid(self, fixed: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        """Rows ``real_a | fake_b | rec_a`` for each A image, then ``real_b | fake_a | rec_b``."""
        device = next(self.parameters()).device
        g_a, g_b = self.nets["G_A"], self.nets["G_B"]
        was_training = self.training
        self.eval()
        try:
            real_a, real_b = fixed["a"].to(device), fixed["b"].to(device)
            fake_b, fake_a = g_a(real_a), g_b(real_b)
            rec_a, rec_b = g_b(fake_b), g_a(fake_a)
        finally:
            self.train(was_training)
        rows = [torch.stack([r, f, c]) for r, f, c in zip(real_a, fake_b, rec_a, strict=True)]
        rows += [torch.stack([r, f, c]) for r, f, c in zip(real_b, fake_a, rec_b, strict=True)]
        return torch.cat(rows).float().clamp(-1, 1), 3

    # -- leaving the run ----------------------------------------------------------------------
    def generators(self) -> dict[str, ExportableGenerator]:
        arch = self.variant.architecture(self.config)
        wrapper = self.variant.exportable()
        return {
            direction: wrapper(
                self.nets[net],
                kind="translation",
                size_multiple=self.size_multiple,
                metadata={"direction": direction, "architecture": arch},
            )
            for direction, net in (("a2b", "G_A"), ("b2a", "G_B"))
        }

    def extra_state(self) -> dict[str, Any]:
        """The image pools (CPU tensors), so that a resumed run continues exactly."""
        return {"pool_A": self.pool_A.state_dict(), "pool_B": self.pool_B.state_dict()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        device = next(self.parameters()).device
        # Pools hold training-size images; others would surface as a shape error mid-step.
        expected = (3, self.config.size, self.config.size)
        for name, pool in (("pool_A", self.pool_A), ("pool_B", self.pool_B)):
            images = state[name]["images"]
            if not isinstance(images, torch.Tensor) or (
                    images.numel() and (images.dim() != 4 or tuple(images.shape[1:]) != expected)):
                shape = list(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
                raise ValueError(f"'{name}' holds images of shape {shape}, "
                                 f"not [N, {', '.join(map(str, expected))}]")
            pool.load_state_dict(state[name], device)
