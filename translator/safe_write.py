"""Writing files so that nothing already at the destination is written through.

Every writer (images, videos, ONNX files, grids, checkpoints, config, CSV rewrites) writes
to a fresh temporary name in the destination's own folder and renames it into place. A
rename replaces the directory entry: a symlink there is replaced rather than followed, a
hard link loses only this name (its other names keep their content), and a crash leaves
the old file or the new one, never half of one.

Names that come from outside (a model's metadata, a config, a data set) pass through
:func:`safe_component` before they become part of a path, and writers that must keep a
file open (append-mode logs, memory-mapped caches) first check it is a plain file of
their own (:func:`is_plain_file`, :func:`append_text`).
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TMP_MARK = ".tmp-"
# What temporary_sibling makes: ".<stem>.tmp-<pid>-<8 hex><suffix>".
_TMP_NAME = re.compile(r"^\..*" + re.escape(TMP_MARK) + r"(\d+)-[0-9a-f]{8}(\.[^.]*)?$")
# Anything but letters, digits, '_', '-' and '.' separates the pieces of a name.
_SEPARATORS = re.compile(r"[^\w.-]+")
MAX_COMPONENT = 64
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def safe_component(name: object, fallback: str) -> str:
    """``name`` as one harmless file-name component, or ``fallback`` if nothing is left.

    A model downloaded from anywhere sets its own domain names: ``x/../../PWNED`` must not
    climb out of a folder, so separators of every kind become ``-``, pieces made only of
    dots go, and leading dots or dashes (hidden files, option-like names) are stripped.
    ``x/../../PWNED`` -> ``x-PWNED``.
    """
    pieces = (piece.strip(".") for piece in _SEPARATORS.split(str(name)))
    text = "-".join(piece for piece in pieces if piece)[:MAX_COMPONENT].strip(".-")
    return text or fallback


def is_inside(path: str | os.PathLike, root: str | os.PathLike) -> bool:
    """Whether ``path`` lands inside ``root`` once links in its folders are followed (the
    file name itself is not followed: writers replace a link there instead)."""
    target = Path(path)
    real = target.parent.resolve() / target.name
    return real.is_relative_to(Path(root).resolve())


def is_plain_file(path: str | os.PathLike) -> bool:
    """A regular file with this one name: writing it in place changes nothing else (not a
    symlink, not a hard link shared with another file)."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_nlink == 1


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


def append_text(path: str | os.PathLike, text: str, start: str = "") -> None:
    """Append ``text`` to ``path`` without writing through a link planted there.

    A plain file is appended to in place (opened without following a symlink, so one made
    between the check and the open is refused, not followed). A symlink is replaced by a
    new file holding ``start`` and ``text`` (what it leads to was never ours); a hard link
    by a copy of its content plus ``text``, which leaves the other names as they were.
    """
    if _NOFOLLOW == 0 and os.path.islink(path):
        fd = None  # no O_NOFOLLOW here: the check above stands in for it
    else:
        fd = _open_append(path)
    if fd is not None:
        st = os.fstat(fd)
        if stat.S_ISREG(st.st_mode) and st.st_nlink == 1:
            with os.fdopen(fd, "a", newline="") as fh:
                fh.write(text)
            return
        with os.fdopen(fd, "r", newline="") as fh:
            start = fh.read() if stat.S_ISREG(st.st_mode) else start
    write_text_atomic(path, start + text)


def _open_append(path: str | os.PathLike) -> int | None:
    """A descriptor of ``path`` opened to append (created if missing); None for a symlink."""
    try:
        return os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | _NOFOLLOW, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return None
        raise


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporaries of :func:`temporary_sibling` in ``folder`` whose writer is
    gone (killed before its rename); a live writer's are left. Returns what was removed."""
    removed: list[Path] = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = _TMP_NAME.match(entry.name)
        if match and not process_alive(int(match.group(1))) and not entry.is_dir():
            entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def process_alive(pid: int) -> bool:
    """Whether ``pid`` names a running process (this one included); unknown counts as alive,
    so that nothing of another user's or a garbled pid's is taken over."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # another user's process, or no pid at all: leave the file alone
    return True


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
