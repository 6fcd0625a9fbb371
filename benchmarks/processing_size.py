"""What a whole photo looks like at each processing size: the detail a translation keeps
(the correlation of its edges with the photo's: Sobel gradient magnitudes, an untrained
measure that ignores the colour change a translation makes), how far it moves the colours
(mean absolute change, 0-255), and its time, for an ONNX model at ``--sizes``.
Writes a picture strip of the results beside the table.

    python benchmarks/processing_size.py --model day2night.onnx --out size-strip.png

The photo is scikit-image's astronaut (512x512, free to publish) unless ``--image``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from skimage import data as samples

from translator.runtime.options import RuntimeOptions
from translator.runtime.pipeline import OWN_SIZE_CAP, FramePipeline, processing_shape


def edges(rgb: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return np.hypot(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1))


def edge_correlation(photo: np.ndarray, out: np.ndarray) -> float:
    """1: every edge of the photo is in the result, at its strength; 0: none is."""
    return float(np.corrcoef(edges(photo).ravel(), edges(out).ravel())[0, 1])


@dataclass
class Row:
    """One processing size: where it ran, what it kept and changed, its time and its result."""

    size: str
    h: int
    w: int
    edges: float
    change: float
    ms: float
    image: np.ndarray


def measure(model: Path, photo: np.ndarray, size: str, repeats: int) -> Row:
    """One row; ``size`` "own" is apply's default (the photo's own size, capped)."""
    own = OWN_SIZE_CAP if size == "own" else None
    session = RuntimeOptions(provider="cpu", size=None if own else int(size)).open_model(
        model, log=lambda _: None)
    pipe = FramePipeline(session, own_size_up_to=own)
    out = pipe.translate([photo])[0]  # warm-up, and the result measured
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        pipe.translate([photo])
        times.append(time.perf_counter() - start)
    h, w = processing_shape(photo.shape[0], photo.shape[1], session.info, own)
    return Row(size=size, h=h, w=w, edges=edge_correlation(photo, out),
               change=float(np.abs(out.astype(np.int16) - photo).mean()),
               ms=1000 * statistics.median(times), image=out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--image", type=Path, default=None)
    parser.add_argument("--sizes", default="64,128,256,own",
                        help="Comma-separated sizes; own: apply's default, the photo's own size")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None, help="Picture strip to write.")
    args = parser.parse_args()
    photo = (np.asarray(Image.open(args.image).convert("RGB")) if args.image
             else samples.astronaut())
    rows = [measure(args.model, photo, s, args.repeats) for s in args.sizes.split(",")]
    print(f"photo {photo.shape[1]}x{photo.shape[0]}, model {args.model.name}")
    print("| --size | runs at | edges kept (correlation) | colour change | ms per image |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r.size} | {r.w}x{r.h} | {r.edges:.3f} | {r.change:.1f} | {r.ms:.0f} |")
    if args.out is not None:
        tiles = [photo] + [r.image for r in rows]
        side = 256
        strip = np.hstack([cv2.resize(t, (side, side), interpolation=cv2.INTER_AREA) for t in tiles])
        Image.fromarray(strip).save(args.out)
        print(f"Wrote {args.out}: the photo, then --size {args.sizes}")


if __name__ == "__main__":
    main()
