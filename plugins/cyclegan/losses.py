"""Adversarial losses (least squares, vanilla, WGAN-GP, hinge).

The gradient penalty, shared by every GAN, lives in :mod:`translator.training.gan`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class GANLoss:
    """The adversarial loss of one kind, for discriminator and generator updates alike.

    ``loss(pred, target_is_real)`` follows the reference's ``GANLoss``: the discriminator
    calls it on real (True) and generated (False) predictions, the generator on generated
    predictions with True. ``pred`` is raw discriminator output (logits); the loss is
    computed in float32 whatever the autocast dtype.

    - ``lsgan``: mean squared error to 1 (real) or 0 (fake) (Mao et al.);
    - ``vanilla``: binary cross-entropy with logits (Goodfellow et al.);
    - ``wgangp``: ``-mean(pred)`` for real, ``mean(pred)`` for fake (Gulrajani et al.; add
      :func:`gradient_penalty` to the discriminator's loss);
    - ``hinge``: discriminator ``relu(1 - pred)`` / ``relu(1 + pred)``, generator
      ``-mean(pred)`` (Lim & Ye; Miyato et al.).
    """

    kinds = ("lsgan", "vanilla", "wgangp", "hinge")

    def __init__(self, kind: str) -> None:
        if kind not in self.kinds:
            raise ValueError(f"unknown GAN loss '{kind}'; known: {', '.join(self.kinds)}")
        self.kind = kind

    def __call__(
        self, pred: torch.Tensor, target_is_real: bool, for_discriminator: bool = True
    ) -> torch.Tensor:
        """The loss of ``pred``. ``for_discriminator`` matters only for ``hinge``."""
        pred = pred.float()
        if self.kind == "lsgan":
            target = torch.ones_like(pred) if target_is_real else torch.zeros_like(pred)
            return F.mse_loss(pred, target)
        if self.kind == "vanilla":
            target = torch.ones_like(pred) if target_is_real else torch.zeros_like(pred)
            return F.binary_cross_entropy_with_logits(pred, target)
        if self.kind == "hinge" and for_discriminator:
            return F.relu(1 - pred).mean() if target_is_real else F.relu(1 + pred).mean()
        # wgangp, and the hinge generator loss.
        return -pred.mean() if target_is_real else pred.mean()

    @property
    def needs_gradient_penalty(self) -> bool:
        return self.kind == "wgangp"
