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

from ..errors import GantoolError
from .device import true_fp32


@dataclass
class ExportableGenerator:
    """A network that can leave a run: for ``gantool translate`` and ``gantool export``.

    ``kind`` is ``"translation"`` (input ``[N, 3, H, W]`` in [-1, 1]) or ``"generation"``
    (input ``[N, latent_dim]``). ``size_multiple`` is what height and width must be
    divisible by; translation generators must state it (a wrong value would let the
    runtime feed sizes the network cannot take), and exporters check it with
    :meth:`check_size_multiple`. ``metadata`` is merged into exported files.
    """

    module: nn.Module
    kind: str
    latent_dim: int | None = None
    #: 0 means "not stated": fine for generation (it becomes 1), an error for translation.
    size_multiple: int = 0
    metadata: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind == "generation" and self.size_multiple == 0:
            self.size_multiple = 1
        if self.size_multiple == 0:
            raise GantoolError(
                f"ExportableGenerator(kind='translation') for {type(self.module).__name__} needs "
                "size_multiple: what height and width must be divisible by (e.g. 4 for two "
                "stride-2 downsamplings)")
        if not isinstance(self.size_multiple, int) or self.size_multiple < 1:
            raise GantoolError(f"ExportableGenerator size_multiple must be a positive int, "
                               f"not {self.size_multiple!r}")

    def example_input(self, batch: int, size: int | tuple[int, int]) -> torch.Tensor:
        if self.kind == "generation":
            return torch.randn(batch, self.latent_dim or 1)
        h, w = (size, size) if isinstance(size, int) else size
        return torch.rand(batch, 3, h, w) * 2 - 1

    def check_size_multiple(self, side: int, label: str | None = None, largest: int = 1024) -> None:
        """Raise a :class:`GantoolError` unless the module keeps the shape of an input whose
        sides are multiples of ``size_multiple`` near ``side`` pixels (one an odd multiple,
        so a network that needs twice the stated multiple fails here, not in the runtime).
        The message names the multiple that does work, found by trying larger ones, and
        starts with ``label`` (e.g. the model and direction)."""
        if self.kind != "translation":
            return
        declared = self.size_multiple
        if self._keeps_shape(declared, side):
            return
        works = next((m for m in _powers_of_two_above(declared, largest)
                      if self._keeps_shape(m, side)), None)
        hint = (f"it works at multiples of {works}: declare ExportableGenerator(size_multiple={works})"
                if works else f"no multiple up to {largest} worked")
        raise GantoolError(f"{label or type(self.module).__name__} does not keep the size of inputs whose "
                           f"sides are multiples of its size_multiple {declared}; {hint}")

    def _keeps_shape(self, multiple: int, side: int) -> bool:
        a = max(2, -(-side // multiple))
        x = self.example_input(1, (multiple * a, multiple * (a + 1)))
        was_training = self.module.training
        self.module.eval()
        try:
            with torch.no_grad():
                out = self.module(x)
        except Exception:  # a shape the network cannot take raises (e.g. a U-Net's concat)
            return False
        finally:
            self.module.train(was_training)
        return tuple(out.shape) == tuple(x.shape)


def _powers_of_two_above(value: int, largest: int) -> Iterator[int]:
    m = value * 2
    while m <= largest:
        yield m
        m *= 2


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
        # Under mixed precision the float32 convolutions left in a backward pass are those
        # kept in float32 on purpose (a gradient penalty's second derivative): no TF32 there.
        with true_fp32() if self.amp_dtype is not None else contextlib.nullcontext():
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

    def mean_over_ranks(self, value: torch.Tensor) -> torch.Tensor:
        """``value`` averaged over all processes (``value`` itself when training alone).

        For what every rank must decide alike, such as which network trains next: ranks
        see different images, and a decision from local numbers would differ between them.
        Every rank must call it at the same point of its step.
        """
        if self.world_size == 1:
            return value
        import torch.distributed as dist

        total = value.detach().float().clone()
        dist.all_reduce(total)
        return total / self.world_size


def _average_gradients(optimizer: torch.optim.Optimizer, world_size: int) -> None:
    """All-reduce the gradients of one optimizer's parameters across processes.

    GAN steps forward a discriminator several times per backward and toggle which network
    learns; averaging at each optimizer step keeps every rank's weights identical without
    constraining how a plugin writes its step. Every rank reduces the same buffer, whatever
    its own step produced: every parameter's gradient (zeros where it has none) and, per
    parameter, how many ranks had one, so that collectives always match across ranks.
    """
    import torch.distributed as dist

    params = [p for group in optimizer.param_groups for p in group["params"]]
    if not params:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    missing = [i for i, p in enumerate(params) if p.grad is None]
    # Filled on the device, not copied from the host: no synchronisation in the usual case.
    had = torch.ones(len(params), device=params[0].device, dtype=grads[0].dtype)
    if missing:
        had[missing] = 0
    flat = torch._utils._flatten_dense_tensors([*grads, had])
    dist.all_reduce(flat)
    flat.div_(world_size)  # once for all; ``had > 0`` still tells who had a gradient
    *synced, had = torch._utils._unflatten_dense_tensors(flat, [*grads, had])
    # Reading the counts syncs with the device: only done when this rank lacks a gradient.
    anyone = had.tolist() if missing else []
    for i, p in enumerate(params):
        if p.grad is not None:
            p.grad.copy_(synced[i])
        elif anyone[i] > 0:
            p.grad = torch.empty_like(p).copy_(synced[i])


def _input_gradient(discriminator: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """``grad_x sum D(x)`` at ``images``, in float32 and eagerly, keeping its graph.

    No autocast and no TF32: the gradient of a half-precision output is too coarse for a
    penalty on its norm. ``create_graph`` lets a penalty on it train the discriminator.
    Eager even under ``--compile``: compiled graphs do not support double backward.
    """
    images = images.detach().float().requires_grad_(True)
    with torch.autocast(device_type=images.device.type, enabled=False), true_fp32(), \
            torch.compiler.set_stance("force_eager"):
        out = discriminator(images).float()
        (grad,) = torch.autograd.grad(out.sum(), images, create_graph=True)
    return grad


def gradient_penalty(
    discriminator: nn.Module,
    real: torch.Tensor,
    fake: torch.Tensor,
    target_norm: float = 1.0,
) -> torch.Tensor:
    """WGAN-GP's penalty ``E[(||grad_x D(x)|| - target_norm)^2]`` on random interpolates.

    Computed in float32 and eagerly (see :func:`_input_gradient`); the result keeps its
    graph, so adding it to the discriminator's loss trains the discriminator on it.
    Interpolation weights come from torch's global RNG (saved and restored on resume).
    """
    real, fake = real.detach().float(), fake.detach().float()
    alpha = torch.rand(real.shape[0], 1, 1, 1, device=real.device)
    grad = _input_gradient(discriminator, alpha * real + (1 - alpha) * fake)
    # The epsilon keeps the norm's gradient finite where the gradient is exactly zero.
    norm = torch.sqrt(grad.flatten(1).pow(2).sum(1) + 1e-12)
    return ((norm - target_norm) ** 2).mean()


def r1_penalty(discriminator: nn.Module, real: torch.Tensor) -> torch.Tensor:
    """R1 (Mescheder et al. 2018): ``E[||grad_x D(x)||^2]`` on real images.

    It keeps the discriminator flat around the training images, so that it cannot carve a
    sharp peak at each one: a regulariser for small data sets. Weight it by ``gamma / 2``.
    Computed like :func:`gradient_penalty`, in float32 and eagerly, keeping its graph.
    """
    return _input_gradient(discriminator, real).flatten(1).pow(2).sum(1).mean()


def adam(params, lr: float, betas: tuple[float, float] = (0.9, 0.999)) -> torch.optim.Adam:
    """Adam, fused into a few kernels per step when every parameter lives on CUDA.

    Call it from ``configure_optimizers``, which runs after the model is on its device.
    """
    params = list(params)
    fused = bool(params) and all(p.is_cuda for p in params)
    return torch.optim.Adam(params, lr=lr, betas=betas, fused=True if fused else None)


def linear_decay(start: int, total: int) -> Callable[[int], float]:
    """Learning-rate factor for step ``s``: 1 before ``start``, then linear down to 0 at ``total``.

    A plain function on purpose: ``LambdaLR.state_dict()`` leaves functions out (it stores
    the ``__dict__`` of callable objects), so a resumed run with more ``--steps`` decays over
    the new total instead of the checkpoint's, and the state loads with ``weights_only=True``.
    """

    def factor(step: int) -> float:
        if step < start:
            return 1.0
        return max(0.0, 1.0 - (step - start) / max(1, total - start))

    return factor


def linear_decay_schedulers(optimizers: dict[str, torch.optim.Optimizer], total_steps: int,
                            decay_start: float) -> dict[str, Any]:
    """The reference GANs' schedule for every optimizer: a constant learning rate for the
    first ``decay_start`` of the steps, then linear to zero (``configure_schedulers``)."""
    start = round(total_steps * decay_start)
    return {name: torch.optim.lr_scheduler.LambdaLR(opt, linear_decay(start, total_steps))
            for name, opt in optimizers.items()}


def set_requires_grad(nets: nn.Module | list[nn.Module], flag: bool) -> None:
    """Freeze or unfreeze networks (e.g. the discriminator while the generator learns)."""
    for net in nets if isinstance(nets, list) else [nets]:
        for p in net.parameters():
            p.requires_grad_(flag)


def init_normal(module: nn.Module, std: float = 0.02) -> None:
    """The DCGAN/CycleGAN weight init: conv and linear weights ~ N(0, std), norms ~ N(1, std)."""
    for m in module.modules():
        name = type(m).__name__
        weight, bias = getattr(m, "weight", None), getattr(m, "bias", None)
        if not isinstance(weight, torch.Tensor):
            continue
        if "Conv" in name or "Linear" in name:
            nn.init.normal_(weight, 0.0, std)
        elif "Norm" in name:
            nn.init.normal_(weight, 1.0, std)
        else:
            continue
        if isinstance(bias, torch.Tensor):
            nn.init.zeros_(bias)


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
