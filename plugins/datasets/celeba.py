"""CelebA: ``img_align_celeba/`` + ``list_attr_celeba.txt`` with domain words as attributes."""

from __future__ import annotations

import os
from pathlib import Path

from translator.data import ImageList
from translator.errors import GantoolError
from translator.specs import DataRequest

ATTR_FILE = "list_attr_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"
IMAGE_DIR = "img_align_celeba"

# domain word -> (attribute, required value)
DOMAIN_WORDS: dict[str, tuple[str, int]] = {
    "male": ("Male", 1),
    "female": ("Male", -1),
    "glasses": ("Eyeglasses", 1),
    "no-glasses": ("Eyeglasses", -1),
    "smiling": ("Smiling", 1),
    "not-smiling": ("Smiling", -1),
    "young": ("Young", 1),
    "old": ("Young", -1),
    "blond": ("Blond_Hair", 1),
    "black-hair": ("Black_Hair", 1),
    "brown-hair": ("Brown_Hair", 1),
    "gray-hair": ("Gray_Hair", 1),
    "bald": ("Bald", 1),
    "beard": ("No_Beard", -1),
    "no-beard": ("No_Beard", 1),
    "makeup": ("Heavy_Makeup", 1),
    "no-makeup": ("Heavy_Makeup", -1),
    "hat": ("Wearing_Hat", 1),
}


def detect(path: Path) -> bool:
    return (path / ATTR_FILE).is_file() and (path / IMAGE_DIR).is_dir()


def parse_domain(word: str, columns: list[str]) -> tuple[str, int]:
    """A domain word (``male``, ``attr:Smiling``, ``attr:-Smiling``) to (column, value)."""
    if word.startswith("attr:"):
        name, value = word[5:], 1
        if name.startswith("-"):
            name, value = name[1:], -1
        if name not in columns:
            raise GantoolError(
                f"CelebA has no attribute '{name}'; columns: {', '.join(columns)}"
            )
        return name, value
    if word.lower() in DOMAIN_WORDS:
        return DOMAIN_WORDS[word.lower()]
    raise GantoolError(
        f"'{word}' is not a CelebA domain word; known: {', '.join(DOMAIN_WORDS)}, "
        "or attr:NAME / attr:-NAME for any column"
    )


def read_attributes(path: Path) -> tuple[list[str], dict[str, list[int]]]:
    """Column names and file name -> attribute values (+1/-1)."""
    try:
        lines = (path / ATTR_FILE).read_text().splitlines()
        columns = lines[1].split()
        rows: dict[str, list[int]] = {}
        for line in lines[2:]:
            parts = line.split()
            if not parts:
                continue
            values = [int(v) for v in parts[1:]]
            if len(values) != len(columns):
                raise ValueError(f"row for {parts[0]} has {len(values)} values")
            rows[parts[0]] = values
    except (IndexError, ValueError) as exc:
        raise GantoolError(f"{path / ATTR_FILE} is not a CelebA attribute file: {exc}") from None
    return columns, rows


def read_partition(path: Path) -> dict[str, int] | None:
    file = path / PARTITION_FILE
    if not file.is_file():
        return None
    out = {}
    for line in file.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2:
            out[parts[0]] = int(parts[1])
    return out


def open_celeba(path: Path | None, request: DataRequest) -> list[ImageList]:
    """Images per domain word; ``list_eval_partition.txt`` splits train (0) and test (1, 2)."""
    assert path is not None
    columns, rows = read_attributes(path)
    partition = read_partition(path)
    present = set(os.listdir(path / IMAGE_DIR))
    missing = [name for name in rows if name not in present]
    all_names = [name for name in sorted(rows) if name in present]
    names = all_names
    if partition is not None:
        wanted = {0} if request.split == "train" else {1, 2}
        names = [n for n in all_names if partition.get(n, 0) in wanted] or all_names
    notes = [f"{len(missing)} file(s) listed in {ATTR_FILE} are missing"] if missing else []
    words = request.domains or ()
    if not words:
        items = [path / IMAGE_DIR / n for n in names]
        return [ImageList("celeba", items, description=f"CelebA {path}", notes=notes)]
    out = []
    for word in words:
        column, value = parse_domain(word, columns)
        index = columns.index(column)
        chosen = [path / IMAGE_DIR / n for n in names if rows[n][index] == value]
        if not chosen and request.split == "test":
            # Test images only feed sample grids; fall back to the training images.
            chosen = [path / IMAGE_DIR / n for n in all_names if rows[n][index] == value]
        if not chosen:
            raise GantoolError(f"domain '{word}' ({column}={value:+d}) has no images in {path}")
        desc = f"CelebA {column}={value:+d}"
        out.append(ImageList(word, chosen, description=desc, notes=notes))
    return out
