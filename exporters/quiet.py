"""Silencing what torch, onnx and onnxruntime print while a model is exported or quantized,
so that an export shows only gantool's own lines."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator


@contextlib.contextmanager
def captured_output() -> Iterator[io.StringIO]:
    """Silence everything the exporter prints: Python prints, warnings, log records (switched
    off for the duration) and C-level writes to file descriptors 1 and 2 (onnx's version
    converter and log handlers bound to the original streams). Printed text is collected
    in the yielded buffer."""
    buf = io.StringIO()
    sys.stdout.flush()
    sys.stderr.flush()
    saved: list[tuple[int, int]] = []
    with tempfile.TemporaryFile(mode="w+b") as sink:
        try:
            for fd in (1, 2):
                try:
                    saved.append((fd, os.dup(fd)))
                    os.dup2(sink.fileno(), fd)
                except OSError:  # no such descriptor (embedded interpreters): Python-level only
                    pass
            # Log handlers may hold a stream captured before this point (not fd 1/2), so
            # records are switched off too, for the duration only.
            previous_disable = logging.root.manager.disable
            logging.disable(logging.CRITICAL)
            try:
                with warnings.catch_warnings(), contextlib.redirect_stdout(buf), \
                        contextlib.redirect_stderr(buf):
                    warnings.simplefilter("ignore")
                    yield buf
            finally:
                logging.disable(previous_disable)
        finally:
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            for fd, copy in saved:
                os.dup2(copy, fd)
                os.close(copy)
            sink.seek(0)
            buf.write(sink.read().decode("utf-8", "replace"))

