"""``translator.serve``: ``gantool serve``: a one-page web app over exported ONNX models.

- :mod:`.service`: the models and what the page asks of them (framework-free, testable),
  with :mod:`.uploads` (image checks and encoding), :mod:`.latents` (reading generation
  requests), :mod:`.samples` (the bundled images) and :mod:`.errors` (``ServeError``);
- :mod:`.app`: the Starlette app, ``create_app(model_paths, ...)``;
- :mod:`.server`: uvicorn, with :mod:`.slow_clients` closing connections that stall;
  :mod:`.budget`: the bytes of uploads held at once;
- ``page.html``: the page, one static file of HTML and vanilla JS.

Starlette and uvicorn are the optional ``serve`` extra, so they are imported only here,
when :func:`create_app` is called.
"""

from __future__ import annotations

from typing import Any


def create_app(*args: Any, **kwargs: Any) -> Any:
    """See :func:`translator.serve.app.create_app`."""
    from .app import create_app as _create_app

    return _create_app(*args, **kwargs)
