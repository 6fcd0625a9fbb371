"""Peak memory of ``gantool apply`` on a folder of decompression bombs.

    python benchmarks/apply_memory.py            # prints the peak RSS of the apply process

The folder holds small PNG files that decode to huge images (12000x12000 = 144 Mpx in about
0.5 MB, 8000x8000, 30000x30000 whose header alone exceeds Pillow's own limit) next to one
ordinary photo, and is translated with the test suite's tiny colour-inverting model. Peak
RSS is read from ``/usr/bin/time -v`` ("Maximum resident set size") of the one ``gantool
apply`` process; it does not depend on timing, so a busy machine changes it little.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def bomb_png(path: Path, width: int, height: int) -> Path:
    """A valid all-black RGB PNG of ``width`` x ``height`` written without ever holding the
    image in memory (rows are compressed one at a time)."""
    import struct

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    comp = zlib.compressobj(9)
    row = b"\x00" + b"\x00" * (3 * width)
    body = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body)
                     + chunk(b"IEND", b""))
    return path


def make_folder(folder: Path) -> Path:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    bomb_png(folder / "bomb-12000.png", 12000, 12000)
    bomb_png(folder / "bomb-8000.png", 8000, 8000)
    bomb_png(folder / "bomb-30000.png", 30000, 30000)
    photo = (np.random.default_rng(0).random((480, 640, 3)) * 255).astype(np.uint8)
    Image.fromarray(photo).save(folder / "photo.png")
    return folder


def peak_rss_mib(cmd: list[str]) -> tuple[float, int, str]:
    """(peak RSS in MiB, exit status, stderr tail) of ``cmd`` under ``/usr/bin/time -v``."""
    proc = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True)
    found = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    if not found:
        raise SystemExit(f"no peak RSS in /usr/bin/time output:\n{proc.stderr[-2000:]}")
    tail = proc.stderr.split("\tCommand being timed")[0].strip().splitlines()[-6:]
    return int(found.group(1)) / 1024, proc.returncode, "\n".join(tail)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.parse_args(argv)
    sys.path.insert(0, str(REPO / "tests"))
    from runtime_helpers import make_invert_model

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folder = make_folder(root / "bombs")
        sizes = ", ".join(f"{p.name} {p.stat().st_size / 1024:.0f} KiB" for p in sorted(folder.iterdir()))
        model = make_invert_model(root / "invert.onnx")
        cmd = [sys.executable, "-m", "translator.cli", "apply", "--model", str(model), str(folder),
               "-o", str(root / "out"), "--no-progress"]
        mib, status, tail = peak_rss_mib(cmd)
    print(f"inputs: {sizes}")
    print(f"apply exit status {status}; its last lines:\n{tail}")
    print(f"peak RSS of gantool apply: {mib:.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
