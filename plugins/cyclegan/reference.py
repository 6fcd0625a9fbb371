"""Checkpoints of the reference CycleGAN (junyanz/pytorch-CycleGAN-and-pix2pix): reading
them safely and recognising their networks from the tensors alone.

The reference saves ``net.state_dict()`` as ``<epoch>_net_<name>.pth``. Its key names are
those of :mod:`.networks` (which reproduces its layer order), with three variations met in
published files:

- ``module.`` before every key, when the network was wrapped in ``DataParallel``;
- ``running_mean`` / ``running_var`` (and ``num_batches_tracked``) on InstanceNorm layers,
  in files saved while its InstanceNorm tracked running statistics; the reference drops them
  on load, and so do we (instance norm normalises with each image's own statistics);
- batch norm (``--norm batch``, pix2pix's default): norm layers with a weight *and* running
  statistics, which are kept: in eval mode (the reference's ``--eval``) they normalise;
- the legacy serialisation format of PyTorch < 1.6 (``torch.load`` reads both).

Files are read with ``torch.load(weights_only=True)``: a file that would run code when
unpickled is refused, never executed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch

from translator.errors import GantoolError

SUPPORTED = ("supported: the reference's state dicts of CycleGAN (instance norm: "
             "resnet_6blocks/resnet_9blocks, unet_128/unet_256, PatchGAN discriminators) and "
             "pix2pix generators (unet_128/unet_256 with batch norm)")
_NORM_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")
_RESNET_BLOCK = re.compile(r"^model\.(\d+)\.conv_block\.1\.weight$")


@dataclass(frozen=True)
class GeneratorArch:
    """A generator recognised from its tensors: ``resnet`` (depth = residual blocks) or
    ``unet`` (depth = downsamplings); ``norm`` ``instance`` (CycleGAN) or ``batch`` (pix2pix)."""

    kind: str
    ngf: int
    depth: int
    norm: str = "instance"

    @property
    def name(self) -> str:
        """The reference's ``--netG`` name, e.g. ``resnet_9blocks`` or ``unet_256``."""
        if self.kind == "unet":
            return f"unet_{2**self.depth}"
        return f"resnet_{self.depth}blocks"

    def __str__(self) -> str:
        norm = ", batch norm" if self.norm == "batch" else ""
        return f"{self.name} (ngf {self.ngf}{norm})"


@dataclass(frozen=True)
class DiscriminatorArch:
    """A PatchGAN recognised from its tensors (``n_layers`` strided convs; 3: 70x70)."""

    ndf: int
    n_layers: int

    def __str__(self) -> str:
        return f"PatchGAN with {self.n_layers} strided layers (ndf {self.ndf})"


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a ``.pth`` state dict, loaded without running code from the file."""
    path = Path(path)
    if not path.is_file():
        raise GantoolError(f"{path}: no such file" if not path.exists() else f"{path} is not a file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling and archive errors come in many types
        raise GantoolError(_load_failure(path, exc)) from None
    if not isinstance(obj, dict) or not obj:
        raise GantoolError(f"{path} holds a {type(obj).__name__}, not a state dict; {SUPPORTED}")
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        keys = ", ".join(str(k) for k in list(obj)[:4])
        raise GantoolError(f"{path} is a dict but not a state dict of tensors (keys: {keys}); "
                           f"{SUPPORTED}")
    return clean_state_dict(obj, path)


def _load_failure(path: Path, exc: Exception) -> str:
    text = str(exc)
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    # A refused class or call means a pickle of Python objects; a refused opcode ("Unsupported
    # operand") means bytes that are no pickle at all.
    if "Unsupported global" in text or ("Weights only load failed" in text
                                        and "Unsupported operand" not in text):
        return (f"{path} is a pickled Python object (e.g. a whole model saved with "
                f"torch.save(model)), not a state dict; gantool never runs code from a file: "
                f"save net.state_dict() instead ({SUPPORTED})")
    return (f"{path} is truncated or not a PyTorch checkpoint "
            f"({type(exc).__name__}: {first.split('. ')[0][:200]})")


def clean_state_dict(state: dict[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    """Without the ``module.`` prefix and the legacy InstanceNorm running statistics.

    A norm layer with running statistics *and* a weight is batch norm (pix2pix): its
    statistics are kept, as they are what the network normalises with in eval mode.
    """
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return {key: value for key, value in state.items()
            if key.rpartition(".")[2] not in _NORM_BUFFERS or is_batch_norm(state, key)}


def is_batch_norm(state: dict[str, torch.Tensor], key: str) -> bool:
    """Whether the layer of ``key`` is batch norm: running statistics beside a weight."""
    layer = key.rpartition(".")[0]
    return f"{layer}.running_mean" in state and f"{layer}.weight" in state


def _conv_weights(state: dict[str, torch.Tensor]) -> list[tuple[str, torch.Tensor]]:
    return [(k, v) for k, v in state.items() if k.endswith(".weight") and v.dim() == 4]


def _check_rgb(path: Path, channels: int, what: str) -> None:
    if channels != 3:
        raise GantoolError(f"{path}: the network's {what} has {channels} channels; gantool "
                           "runs RGB models (3)")


def detect_generator(state: dict[str, torch.Tensor], path: Path) -> GeneratorArch:
    """ResNet (blocks, ngf) or U-Net (depth, ngf), from key names and shapes."""
    norm = "batch" if any(is_batch_norm(state, k) for k in state) else "instance"
    if "model.1.weight" in state and state["model.1.weight"].dim() == 4:
        first = state["model.1.weight"]
        blocks = [k for k in state if _RESNET_BLOCK.match(k)]
        _check_rgb(path, first.shape[1], "input")
        if norm == "batch":
            raise GantoolError(f"{path} is a ResNet generator with batch norm, which gantool "
                               f"has no model for; {SUPPORTED}")
        return GeneratorArch("resnet", int(first.shape[0]), len(blocks))
    if "model.model.0.weight" in state:
        first = state["model.model.0.weight"]
        _check_rgb(path, first.shape[1], "input")
        # Every U-Net level has one down and one up convolution.
        depth = len(_conv_weights(state)) // 2
        return GeneratorArch("unet", int(first.shape[0]), depth, norm)
    if _is_patchgan(state):
        raise GantoolError(f"{path} is a PatchGAN discriminator, not a generator; give it "
                           "with its generators in a folder (<epoch>_net_D_A.pth)")
    raise GantoolError(f"{path} is a state dict, but not of a CycleGAN generator or a pix2pix "
                       "one (first keys: "
                       f"{', '.join(list(state)[:3])}); {SUPPORTED}")


def detect_discriminator(state: dict[str, torch.Tensor], path: Path) -> DiscriminatorArch:
    """A PatchGAN's ndf and strided layers, from its convolutions."""
    if not _is_patchgan(state):
        raise GantoolError(f"{path} is a state dict, but not of a PatchGAN discriminator "
                           f"(first keys: {', '.join(list(state)[:3])}); {SUPPORTED}")
    _check_rgb(path, state["model.0.weight"].shape[1], "input")
    # First conv, n_layers - 1 strided ones, one stride-1 conv, the output conv.
    return DiscriminatorArch(int(state["model.0.weight"].shape[0]), len(_conv_weights(state)) - 2)


def _is_patchgan(state: dict[str, torch.Tensor]) -> bool:
    convs = _conv_weights(state)
    return "model.0.weight" in state and len(convs) >= 3 and convs[-1][1].shape[0] == 1

