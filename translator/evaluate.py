"""``gantool evaluate RUN``: how good a run is, as figures and a grid, without writing code.

Translation runs: every test image of each domain is translated and translated back. The
grid shows real | translated | reconstructed for both directions; the figures are cycle L1
(how much of an image a round trip loses) and identity L1 (how much a generator changes an
image that is already in its target domain), pixels scaled to [0, 1]. Generation runs: a
grid of samples and their diversity. Figures registered by plugins
(:class:`translator.FigureSpec`) are added for the runs they apply to; the built-in
``digits`` data set adds a digit classifier's reading.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from .data import ImageList, ImageReadError
from .data.datasets import open_data
from .data.pipeline import resize_square, to_tensor, to_uint8
from .errors import GantoolError, MissingExtra
from .imaging import save_grid
from .registry import get_registry
from .training.checkpoint import step_dir_name, write_text_atomic
from .training.device import choose_device
from .training.gan import ExportableGenerator
from .training.runs import RunConfig, load_model

#: Without a test split, every this-many-th training image is evaluated.
HELD_OUT_EVERY = 10
#: Samples drawn from a generation run unless ``max_images`` says otherwise.
DEFAULT_SAMPLES = 500
#: Images per direction (translation) or samples (generation) shown in the grid.
GRID_ROWS = 8
GRID_SAMPLES = 64


@dataclass(frozen=True)
class Column:
    """One column of the figures: a translation direction, or a generation run's samples."""

    name: str  # "a2b", "b2a" or "samples"
    kind: str  # "translation" or "generation"
    source: str | None = None  # domain translated from
    target: str | None = None  # domain translated to; generation: the run's domain filter

    @property
    def label(self) -> str:
        return f"{self.source}->{self.target}" if self.kind == "translation" else self.name


@dataclass
class EvalBatch:
    """What a figure sees of one batch, on the CPU; images are ``[N, 3, H, W]`` in [-1, 1]."""

    column: Column
    inputs: torch.Tensor  # real source images, or the noise of a generation run
    outputs: torch.Tensor  # translated images, or samples
    reconstructed: torch.Tensor | None = None  # outputs translated back (translation)


@dataclass
class Evaluation:
    """The figures of one checkpoint and where they were written."""

    run_dir: Path
    model: str
    step: int
    kind: str
    source: str  # where the images came from, in words
    columns: list[Column]
    images: dict[str, int]  # column name -> images evaluated
    figures: dict[str, dict[str, float]]  # column name -> figure -> value
    out_dir: Path
    notes: list[str] = field(default_factory=list)

    @property
    def grid(self) -> Path:
        return self.out_dir / "grid.png"

    @property
    def json_path(self) -> Path:
        return self.out_dir / "figures.json"

    def flat(self) -> dict[str, float]:
        """``{"6->9 cycle L1": 0.04, ...}``: every figure under its column's label."""
        return {f"{c.label} {name}": value for c in self.columns
                for name, value in self.figures[c.name].items()}

    def to_json(self) -> dict[str, Any]:
        return {
            "run": str(self.run_dir), "model": self.model, "step": self.step, "kind": self.kind,
            "images_from": self.source, "notes": self.notes,
            "columns": {c.name: {"label": c.label, "from": c.source, "to": c.target,
                                 "images": self.images[c.name], "figures": self.figures[c.name]}
                        for c in self.columns},
        }

    def table(self) -> str:
        names = list(dict.fromkeys(n for c in self.columns for n in self.figures[c.name]))
        if not names:
            return "no figures apply to this run"
        width = max(len(n) for n in names) + 2
        cells = [max(9, len(c.label) + 2) for c in self.columns]
        lines = [f"{'figure':<{width}}" + "".join(f"{c.label:>{w}}"
                                                   for c, w in zip(self.columns, cells, strict=True))]
        for name in names:
            row = [_cell(self.figures[c.name].get(name), w)
                   for c, w in zip(self.columns, cells, strict=True)]
            lines.append(f"{name:<{width}}" + "".join(row))
        return "\n".join(lines)


def _cell(value: float | None, width: int) -> str:
    if value is None:
        return f"{'-':>{width}}"
    if isinstance(value, int):
        return f"{value:>{width}d}"
    return f"{value:>{width}.3f}"


class MeanFigure:
    """Averages per-image values over a column: the shape of most figures."""

    def __init__(self, measure: Callable[[EvalBatch], dict[str, torch.Tensor]]) -> None:
        self.measure = measure
        self.sums: dict[str, float] = {}
        self.count = 0

    def update(self, batch: EvalBatch) -> None:
        for name, values in self.measure(batch).items():
            self.sums[name] = self.sums.get(name, 0.0) + float(values.double().sum())
        self.count += len(batch.outputs)

    def result(self) -> dict[str, float]:
        return {name: total / max(1, self.count) for name, total in self.sums.items()}


def l1_per_image(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of each image pair, pixels scaled to [0, 1]."""
    return (x.float() - y.float()).abs().flatten(1).mean(1) / 2


def _cycle_l1(batch: EvalBatch) -> dict[str, torch.Tensor]:
    assert batch.reconstructed is not None
    return {"cycle L1": l1_per_image(batch.reconstructed, batch.inputs)}


def _identity_l1(batch: EvalBatch) -> dict[str, torch.Tensor]:
    return {"identity L1": l1_per_image(batch.outputs, batch.inputs)}


def _diversity_l1(batch: EvalBatch) -> dict[str, torch.Tensor]:
    # Neighbouring samples compared: a collapsed generator scores near 0.
    out = batch.outputs
    return {"diversity L1": l1_per_image(out, out.roll(1, dims=0))} if len(out) > 1 else {}


def _plugin_figures(rc: RunConfig, column: Column, notes: list[str]) -> dict[str, Any]:
    """The figures plugins register that apply to this column."""
    figures: dict[str, Any] = {}
    for name, spec in get_registry().figures.items():
        try:
            figure = spec.create(rc, column)
        except MissingExtra as exc:
            note = f"skipped figure '{name}': {exc}"
            if note not in notes:  # once, not once per direction
                notes.append(note)
            continue
        except Exception as exc:  # a plugin's figure must not cost the others
            notes.append(f"figure '{name}' ({spec.plugin}) failed: {type(exc).__name__}: {exc}")
            continue
        if figure is not None:
            figures[name] = figure
    return figures


def _update(figures: dict[str, Any], batch: EvalBatch, notes: list[str]) -> None:
    for name in list(figures):
        try:
            figures[name].update(batch)
        except Exception as exc:
            notes.append(f"figure '{name}' failed: {type(exc).__name__}: {exc}")
            del figures[name]


def _results(figures: dict[str, Any], notes: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, figure in figures.items():
        try:
            out.update({k: v if isinstance(v, int) else float(v)
                        for k, v in figure.result().items()})
        except Exception as exc:
            notes.append(f"figure '{name}' failed: {type(exc).__name__}: {exc}")
    return out


# -- which images ----------------------------------------------------------------------------
def _same_items(a: ImageList, b: ImageList) -> bool:
    if len(a) != len(b):
        return False
    for x, y in zip(a.items, b.items, strict=True):
        if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
            if not (isinstance(x, np.ndarray) and isinstance(y, np.ndarray) and np.array_equal(x, y)):
                return False
        elif x != y:
            return False
    return True


def evaluation_images(rc: RunConfig, max_images: int | None) -> tuple[dict[str, ImageList], str]:
    """The test split of the run's data, or a fixed share of its training images.

    Returns the image lists (keyed ``a``, ``b``) and where they came from, in words.
    """
    test = open_data(rc.train, rc.spec.kind, "test", purpose="evaluate it on")
    train = open_data(rc.train, rc.spec.kind, "train", purpose="evaluate it on")
    if all(_same_items(test[k], train[k]) for k in test):
        # The data has no separate test split: a deterministic share, seen in training.
        test = {k: dataclasses.replace(lst, items=list(lst.items[::HELD_OUT_EVERY]))
                for k, lst in train.items()}
        where = (f"{rc.train.data} has no test split: every {HELD_OUT_EVERY}th training image "
                 "(seen in training)")
    else:
        where = f"{rc.train.data} test split"
    if max_images is not None:
        test = {k: dataclasses.replace(lst, items=list(lst.items[:max_images]))
                for k, lst in test.items()}
    return test, where


def _batches(images: ImageList, size: int, batch_size: int,
             skipped: list[str]) -> Iterator[torch.Tensor]:
    """Unaugmented images as in the sample grids; unreadable files are skipped and named."""
    picked: list[np.ndarray] = []
    for i in range(len(images)):
        try:
            picked.append(resize_square(images.load(i), size))
        except ImageReadError as exc:
            skipped.append(f"skipped {images.label(i)}: {exc}")
        if len(picked) == batch_size:
            yield to_tensor(picked)
            picked = []
    if picked:
        yield to_tensor(picked)


# -- the two kinds of run --------------------------------------------------------------------
def _need(gens: dict[str, ExportableGenerator], names: tuple[str, ...],
          rc: RunConfig) -> list[ExportableGenerator]:
    missing = [n for n in names if n not in gens]
    if missing:
        raise GantoolError(f"model '{rc.spec.name}' has no generator(s) {', '.join(missing)}; "
                           "evaluate needs them")
    return [gens[n] for n in names]


@dataclass
class _Pass:
    """What one evaluation pass gathers."""

    columns: list[Column] = field(default_factory=list)
    figures: dict[str, dict[str, float]] = field(default_factory=dict)
    images: dict[str, int] = field(default_factory=dict)
    grid: list[torch.Tensor] = field(default_factory=list)
    nrow: int = 8


@dataclass
class _Evaluating:
    """What every step of one evaluation shares: the run, where it runs, what it notes."""

    rc: RunConfig
    device: torch.device
    batch_size: int
    bar: tqdm
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Direction:
    """One translation direction: its column, the generator there and the one back."""

    column: Column
    forward: Callable[[torch.Tensor], torch.Tensor]
    #: None for a model that learns one direction: no round trip, no cycle figure.
    back: Callable[[torch.Tensor], torch.Tensor] | None
    source: ImageList
    target: ImageList


def _translation_pass(model: Any, ev: _Evaluating, domains: dict[str, ImageList]) -> _Pass:
    gens = model.generators()
    # A model that learns one direction (a2b only) is read in that direction alone.
    names = ("a2b", "b2a") if "b2a" in gens else ("a2b",)
    nets = {name: g.module for name, g in zip(names, _need(gens, names, ev.rc), strict=True)}
    result = _Pass(nrow=3 * len(names))
    triples = {}
    for name, back, src, dst in (("a2b", "b2a", "a", "b"), ("b2a", "a2b", "b", "a"))[:len(names)]:
        column = Column(name, "translation", domains[src].name, domains[dst].name)
        result.columns.append(column)
        direction = _Direction(column, nets[name], nets.get(back), domains[src], domains[dst])
        result.figures[name], result.images[name], triples[name] = _direction(ev, direction)
    result.grid = _side_by_side(*triples.values())
    return result


def _direction(ev: _Evaluating,
               way: _Direction) -> tuple[dict[str, float], int, list[torch.Tensor]]:
    """Figures, image count and grid rows of one direction."""
    cycle, identity = MeanFigure(_cycle_l1), MeanFigure(_identity_l1)
    figures = _plugin_figures(ev.rc, way.column, ev.notes)
    rows: list[torch.Tensor] = []
    count = 0
    for real in _batches(way.source, ev.rc.train.size, ev.batch_size, ev.notes):
        fake = way.forward(real.to(ev.device)).float().clamp(-1, 1)
        # Without a way back, the grid's third cell is white.
        rec = way.back(fake).float().clamp(-1, 1).cpu() if way.back else torch.ones_like(real)
        fake = fake.cpu()
        batch = EvalBatch(way.column, real, fake, rec if way.back else None)
        if way.back:
            cycle.update(batch)
        _update(figures, batch, ev.notes)
        rows += [torch.stack(t) for t in zip(real, fake, rec, strict=True)][:GRID_ROWS - len(rows)]
        count += len(real)
        ev.bar.update(len(real))
    if count == 0:
        raise GantoolError(f"no readable image in domain '{way.source.name}' to evaluate")
    # Identity: this generator's change to images already in its target domain.
    for real in _batches(way.target, ev.rc.train.size, ev.batch_size, ev.notes):
        translated = way.forward(real.to(ev.device)).float().clamp(-1, 1).cpu()
        identity.update(EvalBatch(way.column, real, translated))
        ev.bar.update(len(real))
    return {**cycle.result(), **identity.result(), **_results(figures, ev.notes)}, count, rows


def _side_by_side(*columns: list[torch.Tensor]) -> list[torch.Tensor]:
    """Rows of real | translated | reconstructed for A, then the same for B (where the
    model has that direction); blank cells (white) where one domain has fewer images."""
    blank = torch.ones_like(next(column[0] for column in columns if column))
    cells = []
    for i in range(max(len(column) for column in columns)):
        for triple in columns:
            cells += list(triple[i] if i < len(triple) else blank)
    return cells


def _generation_pass(model: Any, ev: _Evaluating, count: int, seed: int) -> _Pass:
    (exportable,) = _need(model.generators(), ("generator",), ev.rc)
    gen, latent = exportable.module, exportable.latent_dim or 1
    column = Column("samples", "generation", None, ev.rc.train.domain_a)
    result = _Pass()
    diversity = MeanFigure(_diversity_l1)
    figures = _plugin_figures(ev.rc, column, ev.notes)
    # All noise drawn at once: the samples do not depend on the batch size.
    noise = torch.randn(count, latent, generator=torch.Generator().manual_seed(seed))
    for start in range(0, count, ev.batch_size):
        z = noise[start:start + ev.batch_size]
        samples = gen(z.to(ev.device)).float().clamp(-1, 1).cpu()
        batch = EvalBatch(column, z, samples)
        diversity.update(batch)
        _update(figures, batch, ev.notes)
        result.grid += list(samples[:GRID_SAMPLES - len(result.grid)])
        ev.bar.update(len(z))
    result.columns.append(column)
    result.figures["samples"] = {**diversity.result(), **_results(figures, ev.notes)}
    result.images["samples"] = count
    return result


@dataclass(frozen=True)
class EvalOptions:
    """What :func:`evaluate_run` evaluates, where it writes and how it runs."""

    #: Images per domain (translation; default all test images) or samples (generation;
    #: default :data:`DEFAULT_SAMPLES`).
    max_images: int | None = None
    #: Folder for ``grid.png`` and ``figures.json`` (default ``RUN/eval/step-NNNNNNN``).
    out: Path | None = None
    batch_size: int = 16
    device: str = "auto"
    #: Noise seed of a generation run's samples.
    seed: int = 0


def evaluate_run(run_dir: Path, step: int | None = None,
                 options: EvalOptions = EvalOptions(), progress: bool = True) -> Evaluation:
    """Evaluate a run's checkpoint (``step``, default the latest) and write its figures.

    Writes ``grid.png`` and ``figures.json`` to ``options.out`` (default
    ``RUN/eval/step-NNNNNNN``). ``options.max_images`` caps the images per domain
    (translation) or sets the number of samples (generation, default 500).
    """
    if options.max_images is not None and options.max_images < 1:
        raise GantoolError("--max-images must be at least 1")
    if options.batch_size < 1:
        raise GantoolError("--batch-size must be at least 1")
    run_dir = Path(run_dir)
    model, rc, step = load_model(run_dir, step)
    torch_device = choose_device(options.device, announce=False)
    model.to(torch_device)
    with torch.no_grad():
        if rc.spec.kind == "translation":
            domains, where = evaluation_images(rc, options.max_images)
            # Each direction reads both domains: its sources, then its targets (identity).
            total = len(model.generators()) * sum(len(lst) for lst in domains.values())
            with _bar(total, progress) as bar:
                ev = _Evaluating(rc, torch_device, options.batch_size, bar)
                result = _translation_pass(model, ev, domains)
        else:
            count = options.max_images or DEFAULT_SAMPLES
            where = f"{count} samples from fixed noise (seed {options.seed})"
            with _bar(count, progress) as bar:
                ev = _Evaluating(rc, torch_device, options.batch_size, bar)
                result = _generation_pass(model, ev, count, options.seed)
    out = Path(options.out) if options.out else run_dir / "eval" / step_dir_name(step)
    evaluation = Evaluation(run_dir, rc.spec.name, step, rc.spec.kind, where, result.columns,
                            result.images, result.figures, out, list(dict.fromkeys(ev.notes)))
    evaluation.out_dir.mkdir(parents=True, exist_ok=True)
    save_grid(to_uint8(torch.stack(result.grid)), result.nrow, evaluation.grid)
    write_text_atomic(evaluation.json_path, json.dumps(evaluation.to_json(), indent=2) + "\n")
    return evaluation


def _bar(total: int, progress: bool) -> tqdm:
    return tqdm(total=total, desc="evaluate", unit="img", disable=not progress,
                dynamic_ncols=True, file=sys.stderr)
