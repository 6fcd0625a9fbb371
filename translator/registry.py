"""Collects what plugins register and looks things up by name, with helpful errors."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any, TypeVar

from .errors import GantoolError
from .manager import PluginManager, get_plugin_manager
from .specs import DatasetSpec, ExporterSpec, FaceDetectorSpec, FigureSpec, ModelSpec

T = TypeVar("T")

# hook name -> (spec type, human word)
_HOOKS: dict[str, tuple[type, str]] = {
    "register_models": (ModelSpec, "model"),
    "register_datasets": (DatasetSpec, "dataset"),
    "register_exporters": (ExporterSpec, "exporter"),
    "register_face_detectors": (FaceDetectorSpec, "face detector"),
    "register_figures": (FigureSpec, "figure"),
}


class Registry:
    """Everything registered by the loaded plugins, keyed by name."""

    def __init__(self, pm: PluginManager) -> None:
        self.pm = pm
        self.models: dict[str, ModelSpec] = {}
        self.datasets: dict[str, DatasetSpec] = {}
        self.exporters: dict[str, ExporterSpec] = {}
        self.face_detectors: dict[str, FaceDetectorSpec] = {}
        self.figures: dict[str, FigureSpec] = {}
        tables = {
            "register_models": self.models,
            "register_datasets": self.datasets,
            "register_exporters": self.exporters,
            "register_face_detectors": self.face_detectors,
            "register_figures": self.figures,
        }
        for hook_name, table in tables.items():
            self._collect(hook_name, table)

    def _collect(self, hook_name: str, table: dict[str, Any]) -> None:
        spec_type, word = _HOOKS[hook_name]
        hook = getattr(self.pm.hook, hook_name)
        # Each implementation is called on its own so that an error names its plugin and
        # leaves the others working.
        for impl in hook.get_hookimpls():
            plugin_name = impl.plugin_name
            added: list[Any] = []

            def register(spec: Any, _added: list[Any] = added) -> None:
                if not isinstance(spec, spec_type):
                    raise TypeError(f"register() expects a {spec_type.__name__}, got {spec!r}")
                _added.append(spec)

            try:
                impl.function(register=register)
                for spec in added:
                    if spec.name in table:
                        owner = table[spec.name].plugin
                        raise ValueError(
                            f"{word} '{spec.name}' is already registered by plugin '{owner}'"
                        )
            except Exception as exc:
                self.pm.mark_broken(plugin_name, f"{hook_name}: {type(exc).__name__}: {exc}")
                continue
            info = self.pm.info.get(plugin_name)
            for spec in added:
                spec = _with_plugin(spec, plugin_name)
                table[spec.name] = spec
                if info is not None:
                    info.registered.append(f"{word} {spec.name}")

    def model(self, name: str) -> ModelSpec:
        return _lookup(self.models, name, "model")

    def dataset(self, name: str) -> DatasetSpec:
        return _lookup(self.datasets, name, "dataset")

    def exporter(self, name: str) -> ExporterSpec:
        return _lookup(self.exporters, name, "exporter")

    def face_detector(self, name: str) -> FaceDetectorSpec:
        return _lookup(self.face_detectors, name, "face detector")


def _with_plugin(spec: T, plugin_name: str) -> T:
    import dataclasses

    return dataclasses.replace(spec, plugin=plugin_name)  # type: ignore[type-var]


def _lookup(table: dict[str, T], name: str, word: str) -> T:
    if name in table:
        return table[name]
    known = ", ".join(sorted(table)) or "none"
    close = difflib.get_close_matches(name, table, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise GantoolError(f"unknown {word} '{name}'{hint}; known: {known}")


_registry: Registry | None = None


def get_registry() -> Registry:
    """The registry of the process-wide plugin manager, built on first use."""
    global _registry
    if _registry is None:
        _registry = Registry(get_plugin_manager())
    return _registry


def reset_registry() -> None:
    global _registry
    _registry = None


def lookup_model(name: str) -> ModelSpec:
    return get_registry().model(name)


def list_models(pattern: str = "*", filter_fn: Callable[[ModelSpec], bool] | None = None):
    """Model specs whose name matches a glob ``pattern``, sorted by name."""
    import fnmatch

    specs = [s for n, s in sorted(get_registry().models.items()) if fnmatch.fnmatch(n, pattern)]
    return [s for s in specs if filter_fn is None or filter_fn(s)]
