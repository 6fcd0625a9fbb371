"""``gantool import reference``: the reference CycleGAN's checkpoints as a run or ONNX file.

Torch-free at import time: the work is imported when the command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

_HELP = """Import checkpoints of the reference CycleGAN (junyanz/pytorch-CycleGAN-and-pix2pix).

\b
SOURCE is one of:
  FILE.pth              one generator, A->B (a published latest_net_G.pth)
  G_A.pth G_B.pth       both generators of a run (A->B, then B->A)
  FOLDER                a reference checkpoint folder: <epoch>_net_G_A.pth and
                        <epoch>_net_G_B.pth (optionally _net_D_A/_net_D_B.pth, so that
                        `gantool train --resume` continues training), or <epoch>_net_G.pth

The architecture (ResNet 6/9 blocks, U-Net 128/256, ngf) is read from the tensors.
Files are loaded with torch.load(weights_only=True): a file that would run code is
refused. The result is an ordinary run folder (-o) for translate, export and train
--resume (with --data), and/or ONNX files ready for apply, webcam and serve (--onnx).

\b
Examples:
  gantool import reference style_monet.pth --domain-a photo --domain-b monet --onnx monet.onnx
  gantool import reference checkpoints/horse2zebra -o runs/h2z --domain-a horse --domain-b zebra
  gantool import reference checkpoints/horse2zebra -o runs/h2z --data ~/horse2zebra
"""


@click.command("reference", help=_HELP, short_help="Reference CycleGAN .pth files -> run / ONNX.")
@click.argument("sources", nargs=-1, required=True, metavar="SOURCE...",
                type=click.Path(path_type=Path))
@click.option("-o", "--out", "run_dir", type=click.Path(path_type=Path), default=None,
              help="Run folder to write (default: runs/MODEL-TIMESTAMP, or none with --onnx).")
@click.option("--onnx", "onnx_path", type=click.Path(path_type=Path), default=None,
              help="Also export to this ONNX file (with two generators: NAME-a2b/-b2a.onnx).")
@click.option("--domain-a", default=None, help="Name of domain A (the generator's input), e.g. horse.")
@click.option("--domain-b", default=None, help="Name of domain B (its output), e.g. zebra.")
@click.option("--size", type=int, default=None,
              help="Image size the networks were trained at (default: a U-Net's own size, "
                   "128 or 256, read from its depth; 256 for ResNets, as the reference trains).")
@click.option("--data", default=None,
              help="Training data to record, so that `gantool train --resume RUN` fine-tunes.")
@click.option("--epoch", default="latest", show_default=True,
              help="In a FOLDER: which files, <epoch>_net_G_A.pth...")
def reference_command(sources: tuple[Path, ...], run_dir: Path | None, onnx_path: Path | None,
                      epoch: str, **what_files_lack: Any) -> None:
    # --domain-a, --domain-b, --size and --data are named after ImportOptions' fields.
    from .importer import ImportOptions, find_reference_files, import_reference, import_to_onnx

    files = find_reference_files(sources, epoch)
    options = ImportOptions(**what_files_lack)
    if onnx_path is None:
        import_reference(files, run_dir, options, log=click.echo)
        return
    import_to_onnx(files, onnx_path, run_dir, options, log=click.echo)


def add_commands(cli: click.Group) -> None:
    """``gantool import reference``: an ``import`` group of this plugin's own."""
    group = click.Group("import", help="Bring models made elsewhere into gantool.")
    group.add_command(reference_command)
    cli.add_command(group)
