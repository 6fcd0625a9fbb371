"""The base class that a plugin's ``ModelSpec.build`` returns.

A :class:`GANModel` owns its networks, optimizers and the alternation of discriminator and
generator updates (:meth:`GANModel.train_step`). The core's loop owns everything else:
devices, mixed precision, distributed training, checkpoints, logging, samples, progress.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn


@dataclass
class ExportableGenerator:
    """A network that can leave a run: for ``gantool translate`` and ``gantool export``.

    ``kind`` is ``"translation"`` (input ``[N, 3, H, W]`` in [-1, 1]) or ``"generation"``
    (input ``[N, latent_dim]``). ``size_multiple`` is what height and width must be
    divisible by (translation). ``metadata`` is merged into exported files.
    """

    module: nn.Module
    kind: str
    latent_dim: int | None = None
    size_multiple: int = 1
    metadata: dict[str, str] = field(default_factory=dict)

    def example_input(self, batch: int, size: int | tuple[int, int]) -> torch.Tensor:
        if self.kind == "generation":
            return torch.randn(batch, self.latent_dim or 1)
        h, w = (size, size) if isinstance(size, int) else size
        return torch.rand(batch, 3, h, w) * 2 - 1


class StepContext:
    """Given to :meth:`GANModel.train_step`: the loop's services for one training step.

    Use ``with ctx.autocast():`` around forward passes, ``ctx.backward(loss, opt)`` instead
    of ``loss.backward()`` and ``ctx.step(opt)`` instead of ``opt.step()``: that is all it
    takes for mixed precision, gradient scaling and multi-process training to work.
    Pass every image a discriminator judges through ``ctx.augment(...)`` and the run's
    ``--diffaug`` setting applies to the model without further code.
    """

    def __init__(
        self,
        device: torch.device,
        amp_dtype: torch.dtype | None = None,
        scalers: dict[int, Any] | None = None,
        world_size: int = 1,
        augmentation: Callable[..., tuple[torch.Tensor, ...]] | None = None,
    ) -> None:
        self.device = device
        self.amp_dtype = amp_dtype
        self.scalers = scalers if scalers is not None else {}
        self.world_size = world_size
        #: 0-based number of the step being trained, and the run's total.
        self.global_step = 0
        self.total_steps = 1
        self.augmentation = augmentation
        self._augment_calls = (-1, 0)  # (step, calls made in it)

    def augment(self, *images: torch.Tensor) -> Any:
        """The images as the discriminator should see them: augmented, or unchanged.

        Give the real and generated images of one discriminator update in one call
        (``real, fake = ctx.augment(real, fake)``): they get the same random transform.
        Augment generated images the same way in the generator's update
        (``d(ctx.augment(fake))``). Differentiable: gradients reach the generator. Returns
        one tensor for one argument, else a tuple.
        """
        if self.augmentation is not None:
            step, calls = self._augment_calls
            calls = calls + 1 if step == self.global_step else 0
            self._augment_calls = (self.global_step, calls)
            images = self.augmentation(self.global_step, calls, *images)
        return images[0] if len(images) == 1 else tuple(images)

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        if self.amp_dtype is None:
            yield
            return
        with torch.autocast(device_type=self.device.type, dtype=self.amp_dtype):
            yield

    def _scaler(self, optimizer: torch.optim.Optimizer):
        return self.scalers.get(id(optimizer))

    def backward(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        scaler = self._scaler(optimizer)
        (scaler.scale(loss) if scaler is not None else loss).backward()

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.world_size > 1:
            _average_gradients(optimizer, self.world_size)
        scaler = self._scaler(optimizer)
        if scaler is None:
            optimizer.step()
        else:
            scaler.step(optimizer)
            scaler.update()

    @staticmethod
    def zero_grad(optimizer: torch.optim.Optimizer) -> None:
        optimizer.zero_grad(set_to_none=True)


def _average_gradients(optimizer: torch.optim.Optimizer, world_size: int) -> None:
    """All-reduce the gradients of one optimizer's parameters across processes.

    GAN steps forward a discriminator several times per backward and toggle which network
    learns; averaging at each optimizer step keeps every rank's weights identical without
    constraining how a plugin writes its step.
    """
    import torch.distributed as dist

    grads = [
        p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None
    ]
    if not grads:
        return
    flat = torch._utils._flatten_dense_tensors(grads)
    dist.all_reduce(flat)
    flat.div_(world_size)
    for g, synced in zip(grads, torch._utils._unflatten_dense_tensors(flat, grads), strict=True):
        g.copy_(synced)


def gradient_penalty(
    discriminator: nn.Module,
    real: torch.Tensor,
    fake: torch.Tensor,
    target_norm: float = 1.0,
) -> torch.Tensor:
    """WGAN-GP's penalty ``E[(||grad_x D(x)|| - target_norm)^2]`` on random interpolates.

    Computed in float32 with autocast disabled: the gradient of a half-precision output is
    too coarse for a penalty on its norm. The result keeps its graph (``create_graph``), so
    adding it to the discriminator's loss trains the discriminator on it. Interpolation
    weights come from torch's global RNG (saved and restored on resume).
    """
    real = real.detach().float()
    fake = fake.detach().float()
    alpha = torch.rand(real.shape[0], 1, 1, 1, device=real.device)
    mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    with torch.autocast(device_type=real.device.type, enabled=False):
        out = discriminator(mixed).float()
        (grad,) = torch.autograd.grad(out.sum(), mixed, create_graph=True)
    # The epsilon keeps the norm's gradient finite where the gradient is exactly zero.
    norm = torch.sqrt(grad.flatten(1).pow(2).sum(1) + 1e-12)
    return ((norm - target_norm) ** 2).mean()


def adam(params, lr: float, betas: tuple[float, float] = (0.9, 0.999)) -> torch.optim.Adam:
    """Adam, fused into a few kernels per step when every parameter lives on CUDA.

    Call it from ``configure_optimizers``, which runs after the model is on its device.
    """
    params = list(params)
    fused = bool(params) and all(p.is_cuda for p in params)
    return torch.optim.Adam(params, lr=lr, betas=betas, fused=True if fused else None)


def set_requires_grad(nets: nn.Module | list[nn.Module], flag: bool) -> None:
    """Freeze or unfreeze networks (e.g. the discriminator while the generator learns)."""
    for net in nets if isinstance(nets, list) else [nets]:
        for p in net.parameters():
            p.requires_grad_(flag)


def init_normal(module: nn.Module, std: float = 0.02) -> None:
    """The DCGAN/CycleGAN weight init: conv and linear weights ~ N(0, std), norms ~ N(1, std)."""
    for m in module.modules():
        name = type(m).__name__
        if ("Conv" in name or "Linear" in name) and getattr(m, "weight", None) is not None:
            nn.init.normal_(m.weight, 0.0, std)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
        elif "Norm" in name and getattr(m, "weight", None) is not None:
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)


class GANModel(nn.Module):
    """Base class for every trainable GAN.

    Subclasses put every network in ``self.nets`` (an :class:`nn.ModuleDict`; its state is
    what checkpoints store as safetensors) and implement the methods below.
    """

    kind: ClassVar[str] = "generation"

    def __init__(self, config: Any) -> None:
        super().__init__()
        self.config = config
        self.nets = nn.ModuleDict()

    # -- training ---------------------------------------------------------------------------
    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Name -> optimizer. Called once, after the model is on its device."""
        raise NotImplementedError

    def configure_schedulers(
        self, optimizers: dict[str, torch.optim.Optimizer], total_steps: int
    ) -> dict[str, Any]:
        """Name -> LR scheduler, stepped once per training step. None by default."""
        return {}

    def train_step(
        self, batch: dict[str, torch.Tensor], ctx: StepContext
    ) -> dict[str, torch.Tensor]:
        """One step on one batch; returns detached scalar losses by name.

        ``batch`` holds ``"images"`` (generation) or ``"a"`` and ``"b"`` (translation),
        float tensors ``[N, 3, H, W]`` in [-1, 1] on the training device. Return tensors,
        not floats: the loop reads them only at log intervals, keeping the GPU busy.
        """
        raise NotImplementedError

    # -- samples ------------------------------------------------------------------------------
    def fixed_inputs(
        self, examples: dict[str, torch.Tensor], generator: torch.Generator
    ) -> dict[str, torch.Tensor]:
        """Inputs for sample grids, made once per run so that grids compare over time.

        ``examples`` holds a few unaugmented images per domain (as in ``batch``);
        ``generator`` is a seeded CPU generator for noise.
        """
        return dict(examples)

    @torch.no_grad()
    def sample_grid(self, fixed: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        """Images ``[N, 3, H, W]`` in [-1, 1] for a sample grid, and images per row."""
        raise NotImplementedError

    # -- leaving the run ----------------------------------------------------------------------
    def generators(self) -> dict[str, ExportableGenerator]:
        """Networks that inference and export use, by name (``"generator"``, ``"a2b"``...)."""
        raise NotImplementedError

    def extra_state(self) -> dict[str, Any]:
        """State beyond weights and optimizers that resuming needs (e.g. image pools)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        pass
