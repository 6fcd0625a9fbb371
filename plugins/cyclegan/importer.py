"""Reference CycleGAN and pix2pix checkpoints -> an ordinary gantool run folder (and ONNX
files). A U-Net with batch norm is the reference's pix2pix generator and becomes a run of
the ``pix2pix`` model (found in the registry by name, like any plugin's); the rest become
runs of the CycleGAN variant of their family.

The run folder is written through the core's own functions (``config.json`` and a step-0
checkpoint), so ``translate``, ``export onnx`` and, given ``--data``, ``train --resume``
treat it like any run. A missing generator or discriminator is freshly initialised, and
the log says so.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from translator.config import TrainConfig
from translator.data.datasets import describe_data, open_data
from translator.errors import GantoolError
from translator.registry import get_registry
from translator.specs import ExportRequest, ModelSpec
from translator.training.checkpoint import load_into
from translator.training.outputs import create_run
from translator.training.runs import default_run_dir

from .reference import (
    SUPPORTED,
    DiscriminatorArch,
    GeneratorArch,
    detect_discriminator,
    detect_generator,
    read_state_dict,
)
from .variants import find_variant

Log = Callable[[str], None]
NETS = ("G_A", "G_B", "D_A", "D_B")


@dataclass(frozen=True)
class ReferenceFiles:
    """The reference's files for one run; only ``G_A`` (A -> B) is required."""

    G_A: Path
    G_B: Path | None = None
    D_A: Path | None = None
    D_B: Path | None = None

    def given(self) -> dict[str, Path]:
        return {n: p for n in NETS if (p := getattr(self, n)) is not None}


def find_reference_files(sources: Sequence[Path], epoch: str = "latest") -> ReferenceFiles:
    """One generator file; two (A -> B, then B -> A); or a reference checkpoint folder.

    In a folder: ``<epoch>_net_G_A.pth`` and ``<epoch>_net_G_B.pth`` with the optional
    ``<epoch>_net_D_A.pth`` and ``<epoch>_net_D_B.pth``, or a lone ``<epoch>_net_G.pth``.
    """
    paths = [Path(s) for s in sources]
    if len(paths) == 1 and paths[0].is_dir():
        return _files_in_folder(paths[0], epoch)
    if not 1 <= len(paths) <= 2:
        raise GantoolError("give one generator (.pth), two (A->B then B->A), or a folder of "
                           f"the reference's checkpoints; got {len(paths)} paths")
    for path in paths:
        if path.is_dir():
            raise GantoolError(f"{path} is a folder; give either one folder or .pth files")
    return ReferenceFiles(*paths)


def _files_in_folder(folder: Path, epoch: str) -> ReferenceFiles:
    found = {n: folder / f"{epoch}_net_{n}.pth" for n in NETS}
    found = {n: p for n, p in found.items() if p.is_file()}
    single = folder / f"{epoch}_net_G.pth"
    if "G_A" not in found and single.is_file():
        return ReferenceFiles(single)
    if "G_A" not in found:
        present = ", ".join(sorted(p.name for p in folder.glob("*.pth"))[:8]) or "none"
        raise GantoolError(f"{folder} has no {epoch}_net_G_A.pth or {epoch}_net_G.pth "
                           f"(.pth files there: {present}); pick another with --epoch")
    return ReferenceFiles(**found)


@dataclass
class ImportedNets:
    """The tensors of each given network and what they were recognised as."""

    states: dict[str, dict[str, torch.Tensor]]
    generator: GeneratorArch
    discriminator: DiscriminatorArch | None


def read_reference(files: ReferenceFiles) -> ImportedNets:
    """Read every given file and check that they make one CycleGAN."""
    states = {n: read_state_dict(p) for n, p in files.given().items()}
    gens = {n: detect_generator(states[n], files.given()[n]) for n in ("G_A", "G_B")
            if n in states}
    discs = {n: detect_discriminator(states[n], files.given()[n]) for n in ("D_A", "D_B")
             if n in states}
    for found in (gens, discs):
        if len(set(found.values())) > 1:
            described = "; ".join(f"{n}: {a}" for n, a in found.items())
            raise GantoolError(f"the two networks differ ({described}); a gantool run has one "
                               "architecture for both directions")
    generator = gens["G_A"]
    if generator.kind == "resnet" and generator.depth < 1:
        raise GantoolError(f"{files.G_A} is a ResNet generator without residual blocks; "
                           f"{SUPPORTED}")
    if generator.kind == "unet" and generator.depth < 5:
        raise GantoolError(f"{files.G_A} is a U-Net of depth {generator.depth}; gantool's "
                           "U-Net has at least 5 levels")
    return ImportedNets(states, generator, next(iter(discs.values()), None))


#: The reference trains (and publishes) ResNet generators at its default load size.
REFERENCE_SIZE = 256


def trained_size(gen: GeneratorArch, size: int | None) -> int:
    """``--size`` when given; else what the architecture says: a U-Net of depth d is the
    reference's ``unet_<2**d>``, trained at that size; ResNets at the reference's 256."""
    if size is not None:
        return size
    return 2**gen.depth if gen.kind == "unet" else REFERENCE_SIZE


#: The gantool model a reference U-Net with batch norm becomes, and its generator's net.
PIX2PIX, PIX2PIX_GENERATOR = "pix2pix", "G"


def _model_and_config(nets: ImportedNets, size: int) -> tuple[ModelSpec, Any]:
    gen, disc = nets.generator, nets.discriminator
    if gen.norm == "batch":
        spec = get_registry().model(PIX2PIX)
        config = spec.config(size=size, ngf=gen.ngf, downs=gen.depth)
    else:
        # The reference's generator kinds are the keys of gantool's variants of them.
        variant = find_variant(gen.kind)
        options: dict[str, Any] = {"size": size, "ngf": gen.ngf, variant.depth_option: gen.depth}
        if disc is not None:
            options |= {"ndf": disc.ndf, "d_layers": disc.n_layers}
        spec, config = get_registry().model(variant.name), variant.config(**options)
    _check_size(gen, spec, config, size)
    return spec, config


def _check_size(gen: GeneratorArch, spec: ModelSpec, config: Any, size: int) -> None:
    with torch.device("meta"):  # only its size multiple is needed: nothing is allocated
        multiple = next(iter(spec.build(config).generators().values())).size_multiple
    if size < 1 or size % multiple:
        raise GantoolError(f"--size {size}: a {gen.name} generator needs a multiple of "
                           f"{multiple}")


def _net_names(nets: ImportedNets) -> dict[str, str]:
    """The model's net for each reference file: pix2pix has one generator, ``G``."""
    if nets.generator.norm != "batch":
        return {name: name for name in nets.states}
    extra = sorted(set(nets.states) - {"G_A"})
    if extra:
        raise GantoolError(f"a pix2pix generator ({nets.generator}) translates one way and "
                           f"is imported alone, without {', '.join(extra)}")
    return {"G_A": PIX2PIX_GENERATOR}


def _train_config(spec: ModelSpec, options: ImportOptions) -> TrainConfig:
    defaults = {k: v for k, v in spec.train_defaults.items()
                if k in {f.name for f in dataclasses.fields(TrainConfig)}}
    chosen = {"model": spec.name, "data": options.data or "", "domain_a": options.domain_a,
              "domain_b": options.domain_b, "size": options.size}
    return dataclasses.replace(TrainConfig(), **(defaults | chosen))


def _describe_domains(train_cfg: TrainConfig, files: ReferenceFiles) -> dict[str, Any]:
    """``config.json``'s data section: the real data when given, else the domain names."""
    if train_cfg.data:
        return describe_data(open_data(train_cfg, "translation"))
    names = {"a": train_cfg.domain_a or "A", "b": train_cfg.domain_b or "B"}
    source = f"imported from {files.G_A}"
    return {key: {"name": name, "images": 0, "source": source} for key, name in names.items()}


@dataclass(frozen=True)
class ImportOptions:
    """What the files do not say: domain names, the training size, training data."""

    domain_a: str | None = None
    domain_b: str | None = None
    #: The image size the networks were trained at; ``None``: read from the architecture
    #: (:func:`trained_size`). The runtime resizes frames to it.
    size: int | None = None
    #: Training data to record, so that ``gantool train --resume RUN`` can fine-tune.
    data: str | None = None


def import_reference(files: ReferenceFiles, run_dir: Path | None = None,
                     options: ImportOptions = ImportOptions(), log: Log = print) -> Path:
    """Write a run folder holding the reference's networks; returns the folder."""
    run_dir, nets = _write_run(files, run_dir, options)
    _log_summary(log, nets, files, run_dir)
    return run_dir


def _write_run(files: ReferenceFiles, run_dir: Path | None,
               options: ImportOptions) -> tuple[Path, ImportedNets]:
    if (options.domain_a is None) != (options.domain_b is None):
        raise GantoolError("give both --domain-a and --domain-b, or neither")
    nets = read_reference(files)
    size = trained_size(nets.generator, options.size)
    options = dataclasses.replace(options, size=size)
    spec, model_config = _model_and_config(nets, size)
    train_cfg = _train_config(spec, options)
    data_section = _describe_domains(train_cfg, files)
    run_dir = Path(run_dir) if run_dir is not None else default_run_dir(spec.name)
    torch.manual_seed(0)  # networks not given are initialised the same way every time
    model = spec.build(model_config)
    for name, net in _net_names(nets).items():
        load_into(model.nets[net], nets.states[name], files.given()[name])
    untrained = {} if spec.name == PIX2PIX else _untrained(files)
    create_run(run_dir, spec, train_cfg, model_config, model, data_section, untrained)
    return run_dir, nets


def _untrained(files: ReferenceFiles) -> dict[str, str]:
    """The direction an import of one generator leaves freshly initialised, with why."""
    if files.G_B is not None:
        return {}
    return {"b2a": f"imported from {files.G_A.name} alone, without a B->A generator"}


def _log_summary(log: Log, nets: ImportedNets, files: ReferenceFiles,
                 run_dir: Path | None) -> None:
    """What was read, and (for a kept run folder) what was not given."""
    gen, disc = nets.generator, nets.discriminator
    log(f"Imported {gen}" + (f" into {run_dir}" if run_dir else ""))
    for name, path in files.given().items():
        log(f"  {name}: {path}")
    if gen.norm == "batch":
        log("  pix2pix: one direction (a2b); exported in eval mode, as the reference's --eval")
        return
    if run_dir is None:
        return
    if "G_B" not in nets.states:
        log("  note: no G_B (B->A): it is freshly initialised; use the a2b direction")
    if disc is None:
        log("  note: no discriminators: fresh ones will be trained if you resume")
    elif len([n for n in ("D_A", "D_B") if n in nets.states]) == 1:
        log("  note: one discriminator given; the other is freshly initialised")


def import_to_onnx(files: ReferenceFiles, onnx_path: Path, run_dir: Path | None = None,
                   options: ImportOptions = ImportOptions(), log: Log = print) -> list[Path]:
    """Import, then export the imported generator(s) to self-describing ONNX.

    Without ``run_dir`` the run folder is temporary. With G_A alone only ``a2b`` is
    written (at ``onnx_path``); with both generators, ``-a2b``/``-b2a`` files.
    """
    with tempfile.TemporaryDirectory(prefix="gantool-import-") as tmp:
        run, nets = _write_run(files, run_dir or Path(tmp) / "run", options)
        _log_summary(log, nets, files, run_dir)
        direction = "both" if files.G_B is not None else "a2b"
        exporter = get_registry().exporter("onnx")
        return exporter.export(ExportRequest(run_dir=run, output=Path(onnx_path),
                                             direction=direction, options={"log": log}))
