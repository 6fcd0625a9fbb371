"""Opening the data set ``--data`` names, as the image lists a model kind's batches take
(the data sets themselves are plugins: ``register_datasets``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ..config import TrainConfig
from ..errors import GantoolError
from ..registry import get_registry
from ..specs import DataRequest, DatasetSpec, Kind, ModelSpec, Split
from . import ImageList


def domain_keys(kind: str) -> list[str]:
    """Batch keys of a model kind: ``images`` or ``a`` and ``b``."""
    return ["a", "b"] if kind == "translation" else ["images"]


def data_request(train: TrainConfig, kind: Kind, split: Split = "train") -> DataRequest:
    domains: tuple[str, ...] = ()
    if kind == "translation":
        if (train.domain_a is None) != (train.domain_b is None):
            raise GantoolError("give both --domain-a and --domain-b, or neither")
        if train.domain_a and train.domain_b is not None:
            domains = (train.domain_a, train.domain_b)
    elif train.domain_a:
        domains = (train.domain_a,)
    return DataRequest(kind=kind, domains=domains, split=split, paired=wants_pairs(train))


def wants_pairs(train: TrainConfig) -> bool:
    """Whether the run's model learns from pairs (``ModelSpec.paired``)."""
    spec = get_registry().models.get(train.model) if train.model else None
    return spec is not None and spec.paired


def find_dataset(data: str) -> tuple[DatasetSpec, Path | None]:
    """The data set ``--data`` names: a built-in set (no path) or the format of a folder."""
    registry = get_registry()
    named = {n: s for n, s in registry.datasets.items() if s.detect is None}
    if data in named:
        return named[data], None
    path = Path(data).expanduser()
    if not path.exists():
        known = ", ".join(sorted(named)) or "none registered; see gantool plugins"
        raise GantoolError(f"--data {data}: no such folder or built-in set ({known})")
    if not path.is_dir():
        raise GantoolError(f"--data {data} is a file; give a folder of images")
    formats = sorted((s for s in registry.datasets.values() if s.detect is not None),
                     key=lambda s: s.priority)
    for spec in formats:
        try:
            found = spec.detect is not None and spec.detect(path)
        except PermissionError as exc:
            raise GantoolError(f"--data {data}: cannot read {exc.filename or 'a file'} "
                               "(permission denied)") from None
        if found:
            return spec, path
    raise GantoolError(f"--data {data}: no data format recognises this folder")


def open_data(train: TrainConfig, kind: Kind, split: Split = "train",
              purpose: str = "train it further") -> dict[str, ImageList]:
    """Resolve ``--data`` (a built-in name or a folder) to image lists keyed for batches.
    ``purpose`` says, in the error for a run without data, what the images were for."""
    if not train.data:
        # A run made from imported weights without --data has no images at all.
        raise GantoolError(f"this run names no data (an import without --data), so there "
                           f"are no images to {purpose}; import it again with --data DIR")
    spec, path = find_dataset(train.data)
    request = data_request(train, kind, split)
    if request.paired and not spec.pairs:
        raise GantoolError(f"{train.model} learns from pairs of one scene; --data {train.data} "
                           f"({spec.name}) holds no pairs: give an aligned folder (train/ of "
                           "A|B images side by side), trainA/ and trainB/ whose files match by "
                           "name, or a paired built-in set (digit-edges)")
    try:
        lists = spec.open(path, request)
    except PermissionError as exc:  # e.g. --data /proc: a folder with entries we may not read
        raise GantoolError(f"--data {train.data}: cannot read {exc.filename or 'a file'} "
                           "(permission denied)") from None
    keys = domain_keys(kind)
    if len(lists) != len(keys):
        raise GantoolError(f"--data {train.data} gave {len(lists)} domain(s), need {len(keys)}")
    for lst in lists:
        if len(lst) == 0:
            raise GantoolError(f"domain '{lst.name}' has no images")
    if request.paired:
        lists = _as_pairs(lists, train.data)
    if train.direction == "BtoA" and kind == "translation":
        lists = lists[::-1]
    if aligns_faces(train, spec):
        if request.paired:  # each half would be cropped around its own detection
            raise GantoolError("--align-faces does not keep pairs aligned; give --align-faces off")
        from .faces import aligned_list, alignment_detector
        from .pipeline import CROP_SCALE

        side = max(ALIGNED_SIDE, round(train.size * CROP_SCALE))
        lists = [aligned_list(lst, side, alignment_detector()) for lst in lists]
    return dict(zip(keys, lists, strict=True))


def _as_pairs(lists: list[ImageList], data: str) -> list[ImageList]:
    """The two lists of a paired data set, marked as pairs for the batch pipeline."""
    a, b = lists
    if len(a) != len(b):
        raise GantoolError(f"--data {data} gave {len(a)} A and {len(b)} B images for pairs; "
                           "a paired data set returns lists of equal length")
    return [dataclasses.replace(lst, paired=True) for lst in lists]


def data_defaults(spec: ModelSpec, data: str | None) -> dict[str, Any]:
    """The model's defaults that depend on the data: its ``face_defaults`` when ``data`` is
    a data set of faces, else none."""
    if not data or not spec.face_defaults:
        return {}
    dataset, _ = find_dataset(data)
    return dict(spec.face_defaults) if dataset.faces else {}


def defaults_line(spec: ModelSpec, data: str, taken: dict[str, Any]) -> str:
    """The log line that names the data-dependent defaults a run took."""
    from ..config import flag_name

    dataset, _ = find_dataset(data)
    values = ", ".join(f"{flag_name(k)} {v}" for k, v in taken.items())
    return (f"defaults for faces: {values} ({spec.name}'s choice for data sets of faces, "
            f"measured on CelebA; {dataset.name} holds faces; give a flag to override)")


#: The side faces are aligned at before the batch pipeline resizes them (at least).
ALIGNED_SIDE = 256


def aligns_faces(train: TrainConfig, spec: DatasetSpec) -> bool:
    """Whether ``--align-faces`` (auto: when the data set holds faces) is on."""
    return train.align_faces == "on" or (train.align_faces == "auto" and spec.faces)


def alignment_line(train: TrainConfig) -> str | None:
    """The log line that says whether, and with which detector, faces are aligned."""
    spec, _ = find_dataset(train.data) if train.data else (None, None)
    if spec is None or not aligns_faces(train, spec):
        return None
    from .faces import alignment_detector

    name = alignment_detector()
    why = "--align-faces on" if train.align_faces == "on" else f"{spec.name} holds faces"
    hint = "" if name == "dlib" else ' (estimated from boxes; pip install "gantool[faces]" for landmarks)'
    return f"faces aligned to gantool's template with the {name} detector{hint} ({why})"


def describe_data(domains: dict[str, ImageList]) -> dict[str, Any]:
    return {key: {"name": lst.name, "images": len(lst), "source": lst.description}
            for key, lst in domains.items()}

