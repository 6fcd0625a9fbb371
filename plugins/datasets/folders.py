"""Folder layouts for ``--data``: CycleGAN (trainA/trainB), one folder per domain, or plain."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from translator.data import ImageList
from translator.data.images import is_image_path, scan_images
from translator.errors import GantoolError
from translator.specs import DataRequest

_CYCLEGAN_DIRS = ("trainA", "trainB")


def _image_list(name: str, folder: Path) -> ImageList:
    scan = scan_images(folder)
    if not scan.paths:
        extra = f" ({scan.describe_skipped()})" if scan.skipped else ""
        raise GantoolError(f"domain '{name}' has no readable images in {folder}{extra}")
    notes = [f"{folder}: {scan.describe_skipped()}"] if scan.skipped else []
    return ImageList(name, scan.paths, description=str(folder), notes=notes)


def detect_cyclegan(path: Path) -> bool:
    return all((path / d).is_dir() for d in _CYCLEGAN_DIRS)


def open_cyclegan(path: Path | None, request: DataRequest) -> list[ImageList]:
    """``trainA/ trainB/ [testA/ testB/]``; domain words name the two sides (default A, B)."""
    assert path is not None
    if request.kind == "generation":
        folders = [path / f"{request.split}A", path / f"{request.split}B"]
        lists = [_image_list(f.name, f) for f in folders if f.is_dir()]
        return [_merge(path.name, lists)]
    names = request.domains or ("A", "B")
    out, folders = [], []
    for side, name in zip("AB", names, strict=True):
        folder = path / f"{request.split}{side}"
        if not folder.is_dir():
            folder = path / f"train{side}"
        out.append(_image_list(name, folder))
        folders.append(folder)
    return matched_by_name(out, folders) if request.paired else out


def matched_by_name(lists: list[ImageList], folders: list[Path]) -> list[ImageList]:
    """The files of two folders that pair by name (``trainA/x.png`` with ``trainB/x.png``;
    the extension may differ), in the first folder's order. Files without a partner are
    left out, and a note on the first list names them."""
    keys = [{str(p.relative_to(folder).with_suffix("")): p for p in lst.items
             if isinstance(p, Path)} for lst, folder in zip(lists, folders, strict=True)]
    both = [k for k in keys[0] if k in keys[1]]
    if not both:
        raise GantoolError(f"no file in {folders[0]} has a partner of the same name in "
                           f"{folders[1]}; paired folders hold x.png in both")
    lone = [f"{folder.name}/{path.relative_to(folder)}"
            for found, folder in zip(keys, folders, strict=True)
            for k, path in found.items() if k not in keys[0] or k not in keys[1]]
    more = f" and {len(lone) - 3} more" if len(lone) > 3 else ""
    notes = [f"skipped {len(lone)} file(s) without a partner of the same name: "
             f"{', '.join(lone[:3])}{more}"] if lone else []
    return [dataclasses.replace(lst, items=[found[k] for k in both],
                                notes=[*lst.notes, *(notes if n == 0 else [])])
            for n, (lst, found) in enumerate(zip(lists, keys, strict=True))]


def _subfolders(path: Path) -> dict[str, Path]:
    return {p.name: p for p in sorted(path.iterdir()) if p.is_dir() and not p.name.startswith(".")}


def detect_domain_folders(path: Path) -> bool:
    subs = _subfolders(path)
    return len(subs) >= 2 and not any(is_image_path(p) for p in path.iterdir() if p.is_file())


def open_domain_folders(path: Path | None, request: DataRequest) -> list[ImageList]:
    """One subfolder per domain, named like the domain (``male/``, ``female/``)."""
    assert path is not None
    subs = _subfolders(path)
    if request.kind == "generation":
        if request.domains:
            return [_image_list(request.domains[0], _pick(subs, request.domains[0], path))]
        return [_merge(path.name, [_image_list(n, p) for n, p in subs.items()])]
    names = request.domains or tuple(subs)[:2]
    if len(subs) < 2:
        raise GantoolError(_LAYOUT_HELP.format(path=path))
    return [_image_list(n, _pick(subs, n, path)) for n in names]


def _pick(subs: dict[str, Path], name: str, root: Path) -> Path:
    if name in subs:
        return subs[name]
    lowered = {k.lower(): v for k, v in subs.items()}
    if name.lower() in lowered:
        return lowered[name.lower()]
    raise GantoolError(
        f"no folder for domain '{name}' in {root}; domain folders: {', '.join(subs) or 'none'}"
    )


def _merge(name: str, lists: list[ImageList]) -> ImageList:
    items = [item for lst in lists for item in lst.items]
    notes = [n for lst in lists for n in lst.notes]
    return ImageList(name, items, description=name, notes=notes)


def detect_image_folder(path: Path) -> bool:
    return path.is_dir()


def open_image_folder(path: Path | None, request: DataRequest) -> list[ImageList]:
    """Any folder of images (searched recursively): one domain, for generation models."""
    assert path is not None
    if request.kind == "translation":
        raise GantoolError(_LAYOUT_HELP.format(path=path))
    return [_image_list(path.name, path)]


_LAYOUT_HELP = (
    "{path} does not hold two domains; translation needs trainA/ and trainB/ folders, "
    "one folder per domain (e.g. male/ and female/), or a CelebA root "
    "(img_align_celeba/ and list_attr_celeba.txt)"
)
