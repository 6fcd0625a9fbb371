"""Writing files so that nothing already at the destination is written through.

Every writer (images, videos, ONNX files, grids, checkpoints, config, CSV rewrites) writes
to a fresh temporary name in the destination's own folder and renames it into place. A
rename replaces the directory entry: a symlink there is replaced rather than followed, a
hard link loses only this name (its other names keep their content), and a crash leaves
the old file or the new one, never half of one.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TMP_MARK = ".tmp-"


def temporary_sibling(path: Path) -> Path:
    """A hidden, unused name beside ``path`` that keeps its suffix (writers such as Pillow
    and OpenCV choose the format from it)."""
    token = f"{os.getpid()}-{secrets.token_hex(4)}"
    return path.with_name(f".{path.stem}{TMP_MARK}{token}{path.suffix}")


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write; on success it is renamed to ``path``, on an
    exception it is removed and ``path`` is left as it was."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(final)
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def file_identity(path: str | os.PathLike) -> tuple[int, int] | None:
    """(device, inode) of the file ``path`` leads to (links followed); None if none."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths lead to one file: the same name, a symlink or a hard link."""
    ida = file_identity(a)
    return ida is not None and ida == file_identity(b)
