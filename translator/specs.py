"""Plain descriptions of what plugins register. Importing this module never imports torch."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Kind = Literal["generation", "translation"]
Split = Literal["train", "test"]


@dataclass(frozen=True)
class ModelSpec:
    """A trainable GAN.

    ``config`` is a dataclass type with a default for every field; its fields become the
    model's ``gantool train MODEL`` flags (``field(metadata={"help": ...})`` documents them,
    ``metadata={"choices": [...]}`` restricts a string). ``build(config)`` returns a
    :class:`translator.training.gan.GANModel`; import torch inside it, not at module level.
    """

    name: str
    kind: Kind
    description: str
    config: type
    build: Callable[[Any], Any]
    #: How training images are prepared by default: ``"resize"`` (resize the short side,
    #: centre crop) or ``"crop-flip"`` (resize to 1.12x, random crop, random horizontal
    #: flip). Users override it with ``--preprocess`` and ``--flip/--no-flip``; a data set
    #: whose ``flip_changes_meaning`` is set is never flipped.
    augment: Literal["resize", "crop-flip"] = "resize"
    #: Optional ``summary(config) -> str`` shown by ``gantool models`` (parameters, FLOPs).
    summary: Callable[[Any], str] | None = None
    #: Defaults for shared training flags that suit this model, e.g. ``{"batch_size": 1}``.
    train_defaults: dict[str, Any] = field(default_factory=dict)
    #: Defaults of training or model options for data sets of faces (``DatasetSpec.faces``),
    #: e.g. ``{"ngf": 32}``; flags the user gives win, and the log names what was taken.
    face_defaults: dict[str, Any] = field(default_factory=dict)
    #: True when the model learns from pairs (A, B) of one scene (pix2pix): its data set
    #: must declare ``DatasetSpec.pairs``, and each batch's ``a[i]`` and ``b[i]`` are one pair.
    paired: bool = False
    plugin: str = field(default="", compare=False)


@dataclass(frozen=True)
class DataRequest:
    """What the training loop needs from a data source."""

    kind: Kind
    #: Domain words: two for translation (``("male", "female")``); for generation, empty
    #: (all images) or one word that filters the images.
    domains: tuple[str, ...] = ()
    split: Split = "train"
    #: True for a model that learns from pairs (``ModelSpec.paired``): ``open`` must then
    #: return two lists of equal length whose items ``i`` show one scene.
    paired: bool = False


@dataclass(frozen=True)
class DatasetSpec:
    """A source of images for ``--data``."""

    name: str
    description: str
    #: ``open(path_or_None, request) -> list[ImageList]``, one list per requested domain
    #: (a single list for generation).
    open: Callable[[Path | None, DataRequest], list[Any]]
    #: ``detect(path) -> bool`` for folder formats; ``None`` for named built-in sets.
    detect: Callable[[Path], bool] | None = None
    #: Folder formats are tried in ascending priority order.
    priority: int = 100
    #: True when a mirrored image means something else (digits, text, maps, anything with
    #: handedness): training then never flips its images, whatever the model's default.
    flip_changes_meaning: bool = False
    #: True when each image is a photo of a face: ``--align-faces auto`` then aligns the
    #: faces to the template the runtime's face mode uses (:mod:`translator.face_align`).
    faces: bool = False
    #: True when ``open`` honours ``DataRequest.paired`` (returns matching A and B lists);
    #: a model that learns from pairs refuses a data set without it.
    pairs: bool = False
    plugin: str = field(default="", compare=False)


@dataclass(frozen=True)
class ExportRequest:
    """Everything an exporter needs to write files from a run."""

    run_dir: Path
    output: Path | None = None
    direction: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    checkpoint: int | None = None


@dataclass(frozen=True)
class ExporterSpec:
    """A file format that runs can be exported to (``gantool export NAME RUN``)."""

    name: str
    description: str
    export: Callable[[ExportRequest], list[Path]]
    plugin: str = field(default="", compare=False)


@dataclass(frozen=True)
class FaceDetectorSpec:
    """A face detector for the runtime's face-aware mode."""

    name: str
    description: str
    create: Callable[..., Any]
    plugin: str = field(default="", compare=False)


@dataclass(frozen=True)
class FigureSpec:
    """A figure that ``gantool evaluate`` reports for the runs it applies to.

    ``create(run, column)`` gets the run's :class:`translator.training.runs.RunConfig` and one
    :class:`translator.evaluate.Column` (a translation direction, or a generation run's
    samples) and returns ``None`` when the figure does not apply, else an object with
    ``update(batch)`` (called with each :class:`translator.evaluate.EvalBatch` of that
    column) and ``result() -> dict[str, float]`` (figure name -> value, read once at the end).
    """

    name: str
    description: str
    create: Callable[[Any, Any], Any]
    plugin: str = field(default="", compare=False)
