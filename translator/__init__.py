"""``translator``: gantool's core: plugin hooks, registries, data, the training loop, checkpoints, runtime.

The folder ``translator/`` is this package; three sibling folders are its subpackages under
other names (``pyproject.toml``, ``[tool.setuptools] package-dir``): ``plugins/`` is
``translator.plugins`` (built-in plugins), ``exporters/`` is ``translator.exporters`` and
``cli/`` is ``translator.cli``. So ``translator.plugins.cyclegan`` is ``plugins/cyclegan/``.

Plugin authors need only this module's names::

    import translator

    @translator.hookimpl
    def register_models(register):
        register(translator.ModelSpec(...))

Importing ``translator`` does not import torch; ``translator.training.gan`` and the training
modules do.
"""

import pluggy

from .errors import GantoolError, MissingExtra, PluginError
from .specs import (
    DataRequest,
    DatasetSpec,
    ExporterSpec,
    ExportRequest,
    FaceDetectorSpec,
    FigureSpec,
    ModelSpec,
)

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("gantool")

__all__ = [
    "DataRequest",
    "DatasetSpec",
    "ExportRequest",
    "ExporterSpec",
    "FaceDetectorSpec",
    "FigureSpec",
    "GantoolError",
    "MissingExtra",
    "ModelSpec",
    "PluginError",
    "__version__",
    "hookimpl",
]
