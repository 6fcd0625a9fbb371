"""Differentiable augmentation of what a discriminator sees (DiffAugment, Zhao et al. 2020).

A discriminator trained on a few dozen images memorises them and stops teaching the
generator. Augmenting real and generated images alike, with operations that gradients pass
through, shows it a larger distribution without changing what the generator must learn.
The operations and their strengths follow the paper's reference code: ``color``
(brightness, saturation, contrast), ``translation`` (up to 1/8 of the side, zero-padded),
``cutout`` (a square of half the side set to zero), on images in [-1, 1].

Random draws come from a generator seeded by (seed, rank, step, call number within the
step), never from torch's global stream: a resumed run draws exactly what an uninterrupted
one did, and switching augmentation on does not shift the model's own noise.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import GantoolError

OPERATIONS = ("color", "translation", "cutout")
ALL = ",".join(OPERATIONS)
#: ``--diffaug auto`` turns augmentation on for generation models whose largest domain has
#: at most this many images, and never for translation models: on CycleGAN with real digits
#: it learned less at 20 and at ~145 images per domain than without (BENCHMARKS.md), the
#: cycle loss already keeping the generators from a memorising discriminator's lead.
AUTO_MAX_IMAGES = 1000


def parse_policy(text: str) -> tuple[str, ...]:
    """``"color,cutout"`` -> ``("color", "cutout")``; ``"none"`` -> ``()``."""
    if text.strip() in ("", "none"):
        return ()
    ops = tuple(op.strip() for op in text.split(","))
    unknown = [op for op in ops if op not in OPERATIONS]
    if unknown:
        raise GantoolError(f"--diffaug: unknown operation(s) {', '.join(unknown)}; give a comma "
                           f"list of {', '.join(OPERATIONS)}, or none or auto")
    return ops


def resolve_policy(text: str, kind: str, largest_domain: int) -> tuple[str, str]:
    """The policy ``--diffaug`` means for this model kind and data, and a note saying why."""
    if text != "auto":
        return ",".join(parse_policy(text)) or "none", "as asked"
    if kind == "translation":
        return "none", "auto: off for translation models"
    if largest_domain <= AUTO_MAX_IMAGES:
        return ALL, f"auto: at most {AUTO_MAX_IMAGES} images"
    return "none", f"auto: more than {AUTO_MAX_IMAGES} images"


class DiffAugment:
    """Callable ``augment(step, call, *images)``: one random draw applied to every tensor.

    Real and generated images of one discriminator call get the same transform per sample
    position, so the discriminator cannot tell them apart by the augmentation itself.
    """

    def __init__(self, policy: str, seed: int, rank: int, device: torch.device) -> None:
        self.operations = parse_policy(policy)
        self.seed = seed
        self.rank = rank
        self.generator = torch.Generator(device=device)

    def __bool__(self) -> bool:
        return bool(self.operations)

    def _reseed(self, step: int, call: int) -> None:
        words = np.random.SeedSequence([self.seed, self.rank, step, call]).generate_state(2)
        self.generator.manual_seed(int(words[0]) << 32 | int(words[1]))

    def __call__(self, step: int, call: int, *images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if not self.operations:
            return images
        self._reseed(step, call)
        n = max(x.shape[0] for x in images)
        h, w = images[0].shape[-2:]
        draws = [(op, _DRAWS[op](n, h, w, images[0].device, self.generator))
                 for op in self.operations]
        out = []
        for x in images:
            for op, params in draws:
                x = _APPLY[op](x, {k: v[:x.shape[0]] for k, v in params.items()})
            out.append(x)
        return tuple(out)


def _uniform(n: int, device: torch.device, gen: torch.Generator) -> torch.Tensor:
    return torch.rand(n, 1, 1, 1, device=device, generator=gen)


def _draw_color(n, h, w, device, gen) -> dict[str, torch.Tensor]:
    return {"brightness": _uniform(n, device, gen) - 0.5,
            "saturation": _uniform(n, device, gen) * 2,
            "contrast": _uniform(n, device, gen) + 0.5}


def _apply_color(x: torch.Tensor, p: dict[str, torch.Tensor]) -> torch.Tensor:
    x = x + p["brightness"].to(x.dtype)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * p["saturation"].to(x.dtype) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * p["contrast"].to(x.dtype) + mean


def _draw_translation(n, h, w, device, gen, ratio: float = 0.125) -> dict[str, torch.Tensor]:
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    return {"dy": torch.randint(-sy, sy + 1, (n, 1, 1), device=device, generator=gen),
            "dx": torch.randint(-sx, sx + 1, (n, 1, 1), device=device, generator=gen)}


def _apply_translation(x: torch.Tensor, p: dict[str, torch.Tensor]) -> torch.Tensor:
    n, _, h, w = x.shape
    rows = torch.arange(h, device=x.device).view(1, h, 1) + p["dy"] + 1
    cols = torch.arange(w, device=x.device).view(1, 1, w) + p["dx"] + 1
    rows, cols = rows.clamp(0, h + 1).expand(n, h, w), cols.clamp(0, w + 1).expand(n, h, w)
    batch = torch.arange(n, device=x.device).view(n, 1, 1).expand(n, h, w)
    padded = F.pad(x, [1, 1, 1, 1]).permute(0, 2, 3, 1)
    return padded[batch, rows, cols].permute(0, 3, 1, 2)


CUTOUT_RATIO = 0.5


def _cutout_side(side: int) -> int:
    return int(side * CUTOUT_RATIO + 0.5)


def _draw_cutout(n, h, w, device, gen) -> dict[str, torch.Tensor]:
    ch, cw = _cutout_side(h), _cutout_side(w)
    return {"y": torch.randint(0, h + (1 - ch % 2), (n, 1, 1), device=device, generator=gen),
            "x": torch.randint(0, w + (1 - cw % 2), (n, 1, 1), device=device, generator=gen)}


def _apply_cutout(x: torch.Tensor, p: dict[str, torch.Tensor]) -> torch.Tensor:
    _, _, h, w = x.shape
    ch, cw = _cutout_side(h), _cutout_side(w)
    rows = torch.arange(h, device=x.device).view(1, h, 1) - p["y"] + ch // 2
    cols = torch.arange(w, device=x.device).view(1, 1, w) - p["x"] + cw // 2
    inside = (rows >= 0) & (rows < ch) & (cols >= 0) & (cols < cw)
    return x * (~inside).unsqueeze(1).to(x.dtype)


_DRAWS = {"color": _draw_color, "translation": _draw_translation, "cutout": _draw_cutout}
_APPLY = {"color": _apply_color, "translation": _apply_translation, "cutout": _apply_cutout}
