"""PatchNCE (Park et al. 2020): a translation's features at a location should match its
input's features at the same location, and not those at the other sampled locations.

The pieces, each testable alone: the generator's encoder features (:class:`Encoder`),
the sampled locations (:func:`sample_locations`, :func:`gather_patches`), the projection
head (:class:`PatchHead`) and the loss on projected patches (:func:`patch_nce`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from translator.plugins.cyclegan.networks import ResizeConv

from translator import GantoolError

#: Where a generator's decoder begins: its first upsampling layer.
_UPSAMPLERS = (nn.ConvTranspose2d, ResizeConv)
#: The reference's logit for a location against itself among the negatives: far below any
#: cosine similarity over the temperature, so it weighs nothing in the softmax.
_SELF_LOGIT = -10.0


class Encoder:
    """The outputs of chosen layers of a generator whose body is one ``nn.Sequential``
    (``generator.model``: the ResNet and mobile generators), run through those layers only.

    Not a module of its own: it holds no weights, only the generator's layers, so the
    generator's weights stay where checkpoints, EMA and export find them.
    """

    def __init__(self, generator: nn.Module, layers: Sequence[int]) -> None:
        body = getattr(generator, "model", None)
        if not isinstance(body, nn.Sequential):
            raise GantoolError(f"PatchNCE needs a generator whose body is one nn.Sequential, "
                               f"not {type(generator).__name__}")
        self._body: list[nn.Module] = list(body)
        depth = next((i for i, layer in enumerate(self._body) if isinstance(layer, _UPSAMPLERS)),
                     len(self._body))
        self.layers = tuple(i for i in layers if i < depth)
        if not self.layers:
            raise GantoolError(f"--nce-layers {','.join(map(str, layers))}: none lies in the "
                               f"generator's encoder (layers 0-{depth - 1})")

    def channels(self, in_channels: int = 3) -> list[int]:
        """Channels of each chosen layer's output, read from the layers (no forward pass)."""
        found, channels = [], in_channels
        for i, layer in enumerate(self._body[: self.layers[-1] + 1]):
            channels = getattr(layer, "out_channels", channels)
            if i in self.layers:
                found.append(channels)
        return found

    def __call__(self, images: torch.Tensor) -> list[torch.Tensor]:
        feats, x = [], images
        for i, layer in enumerate(self._body[: self.layers[-1] + 1]):
            x = layer(x)
            if i in self.layers:
                feats.append(x)
        return feats


def sample_locations(feats: Sequence[torch.Tensor], count: int) -> list[torch.Tensor]:
    """Per feature map, ``count`` distinct flat locations (all when it has fewer), drawn on
    the CPU from torch's global stream so that a resumed run draws the same ones."""
    return [torch.randperm(f.shape[2] * f.shape[3])[:count] for f in feats]


def gather_patches(feats: Sequence[torch.Tensor],
                   locations: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Feature vectors ``[N * P, C]`` at ``locations`` (image-major), per layer."""
    return [f.permute(0, 2, 3, 1).flatten(1, 2)[:, where.to(f.device)].flatten(0, 1)
            for f, where in zip(feats, locations, strict=True)]


class PatchHead(nn.Module):
    """The projection head: per layer, Linear - ReLU - Linear to ``units``, then unit length.

    Sized from the encoder's channels when the model is built, so that it is an ordinary
    part of the model from the start (the reference creates it at the first step).
    """

    def __init__(self, channels: Sequence[int], units: int = 256) -> None:
        super().__init__()
        self.mlps = nn.ModuleList(
            nn.Sequential(nn.Linear(c, units), nn.ReLU(), nn.Linear(units, units))
            for c in channels)

    def forward(self, patches: list[torch.Tensor]) -> list[torch.Tensor]:
        return [F.normalize(mlp(p), dim=1) for mlp, p in zip(self.mlps, patches, strict=True)]


def patch_nce(query: torch.Tensor, key: torch.Tensor, images: int,
              temperature: float = 0.07) -> torch.Tensor:
    """Per-patch cross-entropy ``[N * P]`` of picking the key at the query's own location
    among the keys at the other locations of the same image.

    ``query`` and ``key`` are ``[N * P, C]`` unit vectors from :func:`gather_patches` and
    :class:`PatchHead`; ``key`` is held fixed (no gradient). Computed in float32.
    """
    query, key = query.float(), key.detach().float()
    dim = query.shape[1]
    positive = (query * key).sum(1, keepdim=True)
    q, k = query.view(images, -1, dim), key.view(images, -1, dim)
    patches = q.shape[1]
    negative = torch.bmm(q, k.transpose(1, 2))
    itself = torch.eye(patches, dtype=torch.bool, device=query.device)[None]
    negative = negative.masked_fill(itself, _SELF_LOGIT).view(-1, patches)
    logits = torch.cat([positive, negative], dim=1) / temperature
    target = torch.zeros(len(logits), dtype=torch.long, device=query.device)
    return F.cross_entropy(logits, target, reduction="none")
