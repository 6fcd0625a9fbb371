"""How well do gantool's detectors find and align faces? On the held-out faces of a CelebA
root (and on scikit-image's astronaut): the share of images in which each detector finds a
face, the milliseconds it takes, and how close an aligned crop's landmarks land on the
template (dlib re-detects them in the crop; error as a share of the outer-eye distance).
Haar's landmarks are estimated from its box; their error against dlib's is given too.

    python benchmarks/face_alignment.py --data ../shared/faces-celeba
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from skimage import data as samples

from translator.data.images import read_image
from translator.face_align import TEMPLATE, align_face, find_face, landmark_error
from translator.face_detectors import create_detector


def test_images(root: Path) -> list[Path]:
    lines = (root / "list_eval_partition.txt").read_text().splitlines()
    names = [p[0] for p in (line.split() for line in lines) if len(p) == 2 and p[1] == "2"]
    return [root / "img_align_celeba" / n for n in sorted(names)]


def measure(images: list[np.ndarray], detectors: dict) -> dict[str, dict[str, float]]:
    judge = detectors["dlib"]
    found: dict[str, list] = {name: [] for name in detectors}
    seconds = dict.fromkeys(detectors, 0.0)
    for img in images:
        for name, det in detectors.items():
            start = time.perf_counter()
            found[name].append(find_face(det, img))
            seconds[name] += time.perf_counter() - start
    rows = {}
    for name in detectors:
        hits = [(img, lm) for img, lm in zip(images, found[name], strict=True) if lm is not None]
        again = [find_face(judge, align_face(img, lm, 256).crop) for img, lm in hits]
        errors = [landmark_error(a, TEMPLATE * 256) for a in again if a is not None]
        versus = [landmark_error(lm, ref) for lm, ref in zip(found[name], found["dlib"], strict=True)
                  if lm is not None and ref is not None]
        rows[name] = {"found": len(hits) / len(images), "ms": 1000 * seconds[name] / len(images),
                      "aligned error": float(np.median(errors)) if errors else float("nan"),
                      "vs dlib": float(np.median(versus)) if versus else float("nan")}
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="a CelebA root with list_eval_partition.txt")
    args = parser.parse_args()
    detectors = {"dlib": create_detector("dlib"), "haar": create_detector("haar")}
    sets = {"CelebA test split": [read_image(p) for p in test_images(Path(args.data))],
            "astronaut": [samples.astronaut()]}
    print("| images | detector | face found | ms per image | aligned landmarks vs template "
          "(median) | landmarks vs dlib's (median) |")
    print("|---|---|---|---|---|---|")
    for label, images in sets.items():
        for name, row in measure(images, detectors).items():
            print(f"| {label} ({len(images)}) | {name} | {row['found']:.3f} | {row['ms']:.1f} | "
                  f"{row['aligned error']:.3f} | {row['vs dlib']:.3f} |")


if __name__ == "__main__":
    main()
