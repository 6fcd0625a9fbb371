"""The image pool of Shrivastava et al. (2017), as CycleGAN uses it.

The discriminators learn from a history of generated images rather than only the latest
ones, which damps the oscillation between generator and discriminator.
"""

from __future__ import annotations

from typing import Any

import torch


class ImagePool:
    """A buffer of up to ``pool_size`` generated images.

    :meth:`query` has the reference's semantics: while the pool is filling, each image is
    stored and returned; once full, each image is, with probability 1/2, swapped for a random
    stored one (which is returned instead), else returned as is. The draws use torch's global
    CPU RNG, which checkpoints save, so a resumed run draws the same numbers; the images are
    in :meth:`state_dict`.
    """

    def __init__(self, pool_size: int) -> None:
        self.pool_size = pool_size
        self.images: list[torch.Tensor] = []

    def __len__(self) -> int:
        return len(self.images)

    @torch.no_grad()
    def query(self, images: torch.Tensor) -> torch.Tensor:
        """Images ``[N, ...]`` in, as many out: some of them replaced by older ones."""
        if self.pool_size <= 0:
            return images
        images = images.detach()
        out: list[torch.Tensor] = []
        for image in images:
            if len(self.images) < self.pool_size:
                self.images.append(image.clone())
                out.append(image)
                continue
            # Draw on the CPU: no device synchronisation, and one RNG to save for resume.
            if torch.rand(()).item() > 0.5:
                idx = int(torch.randint(self.pool_size, ()).item())
                old = self.images[idx].to(device=image.device, dtype=image.dtype)
                self.images[idx] = image.clone()
                out.append(old)
            else:
                out.append(image)
        return torch.stack(out)

    def state_dict(self) -> dict[str, Any]:
        """Tensors on the CPU and plain numbers only: loadable with ``weights_only=True``."""
        if self.images:
            stored = torch.stack([im.detach().cpu() for im in self.images])
        else:
            stored = torch.empty(0)
        return {"pool_size": self.pool_size, "images": stored}

    def load_state_dict(self, state: dict[str, Any], device: torch.device | None = None) -> None:
        """Restore :meth:`state_dict`; ``device`` is where the images will be used."""
        images = state["images"]
        if device is not None:
            images = images.to(device)
        # A pool made larger on resume keeps filling; a smaller one drops the extra images.
        keep = max(self.pool_size, 0)
        self.images = [im.clone() for im in images[:keep]] if images.numel() else []
