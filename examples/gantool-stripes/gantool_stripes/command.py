"""``gantool stripes-preview``: a command added by a plugin. Heavy imports stay inside it."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("stripes-preview")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=Path("stripes.png"),
              show_default=True, help="Grid image to write.")
@click.option("-n", "count", type=int, default=8, show_default=True, help="Images per domain.")
def stripes_preview(output: Path, count: int) -> None:
    """Write a grid of the stripes data set: one row per domain."""
    import numpy as np
    from PIL import Image

    import translator

    from .data import open_stripes

    if count < 1:
        raise translator.GantoolError("-n must be at least 1")
    lists = open_stripes(translator.DataRequest(kind="translation"))
    rows = [np.hstack([images.load(i) for i in range(min(count, len(images)))]) for images in lists]
    output.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.vstack(rows)).save(output)
    click.echo(f"Wrote {output}")
