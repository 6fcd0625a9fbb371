"""The gender judge's own error: how dlib's CC0 gender network (``gantool evaluate``'s
``faces`` figure) reads real, untouched held-out faces of a CelebA root, at full size, at
the 64 px that training sees, and blurred (the judge reads blur as female).

    python benchmarks/face_judge.py --data ../shared/faces-celeba
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
from skimage import data as samples
from translator.plugins.faces.judge import enlarge, judge

from translator.data.images import read_image
from translator.data.pipeline import resize_square
from translator.face_align import align_face, find_face
from translator.face_detectors import create_detector


def labelled_test_faces(root: Path) -> list[tuple[Path, bool]]:
    """(image, is male) for the test split (partition 2)."""
    parts = dict(line.split() for line in (root / "list_eval_partition.txt").read_text().splitlines()
                 if len(line.split()) == 2)
    lines = (root / "list_attr_celeba.txt").read_text().splitlines()
    male = lines[1].split().index("Male")
    rows = {p[0]: p[1 + male] == "1" for p in (line.split() for line in lines[2:]) if p}
    return [(root / "img_align_celeba" / n, rows[n]) for n in sorted(parts) if parts[n] == "2" and n in rows]


def read_share(images, is_male) -> tuple[int, int]:
    j, found, right = judge(), 0, 0
    for img, male in zip(images, is_male, strict=True):
        big = enlarge(img)
        rect = j.find(big)
        if rect is not None:
            found += 1
            right += (j.read(big, rect).gender == "male") == male
    return found, right


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--per-gender", type=int, default=80, help="faces per gender for the blur rows")
    args = parser.parse_args()
    faces = labelled_test_faces(Path(args.data))
    full = [read_image(p) for p, _ in faces]
    males = [m for _, m in faces]
    print("| input | faces found | read as their own gender |\n|---|---|---|")
    for label, images in (("test split at full size", full),
                          ("test split centre-cropped to 64 px", [resize_square(i, 64) for i in full])):
        found, right = read_share(images, males)
        print(f"| {label} | {found} / {len(images)} | {right / max(found, 1):.3f} |")
    detector = create_detector("dlib")
    for gender in (True, False):
        chosen = [i for i, m in zip(full, males, strict=True) if m == gender][:args.per_gender]
        aligned = [align_face(i, lm, 256).crop for i in chosen if (lm := find_face(detector, i)) is not None]
        small = [cv2.resize(a, (64, 64), interpolation=cv2.INTER_AREA) for a in aligned]
        for label, images in (("aligned, 64 px", small),
                              ("blurred sigma 1 px", [cv2.GaussianBlur(s, (0, 0), 1.0) for s in small]),
                              ("blurred sigma 2 px", [cv2.GaussianBlur(s, (0, 0), 2.0) for s in small])):
            found, right = read_share(images, [gender] * len(images))
            print(f"| {'male' if gender else 'female'} test faces, {label} | {found} / {len(images)} | "
                  f"{right / max(found, 1):.3f} |")
    a = samples.astronaut()
    print(f"| astronaut | p male {judge().read(a, judge().find(a)).p_male:.2f} | |")


if __name__ == "__main__":
    main()
