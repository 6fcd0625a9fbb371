"""CUT and FastCUT (Park, Efros, Zhang, Zhu 2020): one generator, one PatchGAN, PatchNCE.

Names follow the reference implementation (taesungp/contrastive-unpaired-translation):

- ``G`` translates A -> B, ``D`` judges domain B, ``F`` is the PatchNCE projection head;
- losses ``G`` (adversarial, generator side), ``D`` (discriminator), ``NCE`` (input against
  its translation) and ``NCE_Y`` (a B image against its translation, CUT only).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from translator.plugins.cyclegan.losses import GANLoss
from translator.plugins.cyclegan.networks import (
    MobileResnetGenerator,
    NLayerDiscriminator,
    ResnetGenerator,
)

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

from .config import CUTConfig, parse_layers, resolve_blocks
from .patchnce import Encoder, PatchHead, gather_patches, patch_nce, sample_locations

Generator = ResnetGenerator | MobileResnetGenerator

#: Generator family -> its class and its own first-layer width.
FAMILIES: dict[str, tuple[type[Generator], int]] = {
    "resnet": (ResnetGenerator, 64),
    "mobile": (MobileResnetGenerator, 16),
}


def build_generator(config: CUTConfig) -> Generator:
    family, own_ngf = FAMILIES[config.generator]
    return family(3, 3, ngf=config.ngf or own_ngf, n_blocks=resolve_blocks(config),
                  upsample=config.upsample)


def architecture(config: CUTConfig) -> str:
    """``resnet_9blocks``: the generator's name, as the CycleGAN reference names it."""
    return f"{config.generator}_{resolve_blocks(config)}blocks"


def build_discriminator(config: CUTConfig) -> NLayerDiscriminator:
    return NLayerDiscriminator(3, ndf=config.ndf, n_layers=config.d_layers)


def build_head(config: CUTConfig, generator: nn.Module) -> PatchHead:
    encoder = Encoder(generator, parse_layers(config.nce_layers))
    return PatchHead(encoder.channels(), config.head_units)


class CUT(GANModel):
    """CUT, or FastCUT by its config (no identity term, heavier PatchNCE); see the module
    docstring for names."""

    kind = "translation"

    def __init__(self, config: CUTConfig) -> None:
        super().__init__(config)
        check_ranges(config)
        generator = build_generator(config)
        self.nets["G"] = generator
        self.nets["D"] = build_discriminator(config)
        self.nets["F"] = build_head(config, generator)
        for net in self.nets.values():
            init_normal(net, config.init_std)
        self.encoder = Encoder(generator, parse_layers(config.nce_layers))
        self.size_multiple: int = generator.size_multiple
        self.gan_loss = GANLoss(config.gan_loss)
        self._optimizers: dict[str, torch.optim.Optimizer] = {}

    # -- training ---------------------------------------------------------------------------
    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """One Adam for the generator and the head (the reference gives the head its own,
        with the same settings: Adam is per parameter, so that is the same update), one for
        the discriminator."""
        cfg = self.config
        betas = (cfg.beta1, cfg.beta2)
        g_params = [*self.nets["G"].parameters(), *self.nets["F"].parameters()]
        self._optimizers = {
            "G": adam(g_params, lr=cfg.lr, betas=betas),
            "D": adam(self.nets["D"].parameters(), lr=cfg.lr, betas=betas),
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
        """The reference's step: translate once, update the discriminator, then the
        generator and head on the adversarial and PatchNCE losses."""
        if not self._optimizers:
            raise RuntimeError("call configure_optimizers() before train_step()")
        cfg = self.config
        real_a, real_b = batch["a"], batch["b"]
        mirrored = cfg.flip_equivariance and bool(torch.rand(()) < 0.5)
        # The identity term's B images go through the generator in the same batch.
        source = torch.cat([real_a, real_b]) if cfg.nce_idt else real_a
        with ctx.autocast():
            out = self.nets["G"](source.flip(3) if mirrored else source)
        fake_b = out[: len(real_a)]
        losses = {"D": self._discriminator_step(real_b, fake_b.detach(), ctx)}
        losses.update(self._generator_step(batch, out, mirrored, ctx))
        return {name: value.detach() for name, value in losses.items()}

    def _discriminator_step(self, real_b: torch.Tensor, fake_b: torch.Tensor,
                            ctx: StepContext) -> torch.Tensor:
        d, opt = self.nets["D"], self._optimizers["D"]
        set_requires_grad(d, True)
        ctx.zero_grad(opt)
        # Real and generated images through the same augmentation.
        real_b, fake_b = ctx.augment(real_b, fake_b)
        with ctx.autocast():
            # Halved as in the reference, which slows the discriminator down.
            loss = 0.5 * (self.gan_loss(d(real_b), True) + self.gan_loss(d(fake_b), False))
        ctx.backward(loss, opt)
        ctx.step(opt)
        return loss

    def _generator_step(self, batch: dict[str, torch.Tensor], out: torch.Tensor,
                        mirrored: bool, ctx: StepContext) -> dict[str, torch.Tensor]:
        cfg = self.config
        d, opt = self.nets["D"], self._optimizers["G"]
        real_a, real_b = batch["a"], batch["b"]
        fake_b = out[: len(real_a)]
        set_requires_grad(d, False)
        ctx.zero_grad(opt)
        with ctx.autocast():
            adversarial = self.gan_loss(d(ctx.augment(fake_b)), True, for_discriminator=False)
            losses = {"G": adversarial * cfg.lambda_gan}
            nce_terms = []
            if cfg.lambda_nce > 0:
                nce_terms.append(self.nce_loss(real_a, fake_b, mirrored))
                losses["NCE"] = nce_terms[-1]
                if cfg.nce_idt:
                    nce_terms.append(self.nce_loss(real_b, out[len(real_a):], mirrored))
                    losses["NCE_Y"] = nce_terms[-1]
            # With the identity term the two PatchNCE losses are averaged, as in the reference.
            total = losses["G"] + sum(nce_terms) / max(1, len(nce_terms))
        ctx.backward(total, opt)
        ctx.step(opt)
        set_requires_grad(d, True)
        return losses

    def nce_loss(self, source: torch.Tensor, translation: torch.Tensor,
                 mirrored: bool = False) -> torch.Tensor:
        """PatchNCE of ``translation`` against its ``source``, weighted by ``lambda_nce`` and
        averaged over the layers. ``mirrored``: the translation was made from the mirrored
        source, so its features are mirrored back before they are compared."""
        cfg, head = self.config, self.nets["F"]
        with torch.no_grad():  # the keys are fixed targets: the reference detaches them
            keys = self.encoder(source)
            where = sample_locations(keys, cfg.num_patches)
            key_patches = head(gather_patches(keys, where))
        queries = self.encoder(translation)
        if mirrored:
            queries = [q.flip(3) for q in queries]
        query_patches = head(gather_patches(queries, where))
        images = len(source)
        per_layer = [patch_nce(q, k, images, cfg.nce_t).mean()
                     for q, k in zip(query_patches, key_patches, strict=True)]
        return cfg.lambda_nce * torch.stack(per_layer).mean()

    # -- samples ------------------------------------------------------------------------------
    def fixed_inputs(
        self, examples: dict[str, torch.Tensor], generator: torch.Generator
    ) -> dict[str, torch.Tensor]:
        """At most 4 images per domain."""
        return {key: examples[key][:4] for key in ("a", "b")}

    @torch.no_grad()
    def sample_grid(self, fixed: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        """Rows ``real_a | G(real_a)``, then ``real_b | G(real_b)`` (what the identity
        term holds close to its input)."""
        device = next(self.parameters()).device
        g = self.nets["G"]
        was_training = self.training
        self.eval()
        try:
            images = torch.cat([fixed["a"], fixed["b"]]).to(device)
            translated = g(images)
        finally:
            self.train(was_training)
        rows = [torch.stack(pair) for pair in zip(images, translated, strict=True)]
        return torch.cat(rows).float().clamp(-1, 1), 2

    # -- leaving the run ----------------------------------------------------------------------
    def generators(self) -> dict[str, ExportableGenerator]:
        """The one direction this model learns."""
        return {"a2b": ExportableGenerator(
            self.nets["G"], kind="translation", size_multiple=self.size_multiple,
            metadata={"direction": "a2b", "architecture": architecture(self.config)})}
