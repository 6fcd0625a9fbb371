"""Collects what plugins register and looks things up by name, with helpful errors.

Which registration wins a name: a built-in plugin's, always; among third parties, the
first by plugin name. A later registrant of a taken name is refused for that name only
(``gantool plugins`` says so) and keeps everything else it registered.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
from collections.abc import Callable
from typing import Any, TypeVar

from .errors import GantoolError
from .manager import PluginManager, get_plugin_manager
from .specs import DatasetSpec, ExporterSpec, FaceDetectorSpec, FigureSpec, ModelSpec

T = TypeVar("T")

# hook name -> (spec type, human word)
HOOKS: dict[str, tuple[type, str]] = {
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
        tables: dict[str, dict[str, Any]] = {
            "register_models": self.models,
            "register_datasets": self.datasets,
            "register_exporters": self.exporters,
            "register_face_detectors": self.face_detectors,
            "register_figures": self.figures,
        }
        for hook_name, table in tables.items():
            self._collect(hook_name, table)
        self._drop_broken(tables.values())

    def _collect(self, hook_name: str, table: dict[str, Any]) -> None:
        spec_type, word = HOOKS[hook_name]
        pending: dict[str, list[Any]] = {}

        def kwargs_for(plugin_name: str) -> dict[str, Any]:
            added = pending.setdefault(plugin_name, [])

            def register(spec: Any) -> None:
                if not isinstance(spec, spec_type):
                    raise TypeError(f"register() expects a {spec_type.__name__}, got {spec!r}")
                added.append(spec)

            return {"register": register}

        # Only plugins whose call succeeded are yielded; a failed one adds nothing.
        for plugin_name, _ in self.pm.call_each(hook_name, kwargs_for):
            info = self.pm.info.get(plugin_name)
            for spec in pending[plugin_name]:
                if spec.name in table:
                    owner = table[spec.name].plugin
                    if info is not None:
                        info.refused.append(f"{word} '{spec.name}': already registered by "
                                            f"{self._describe_plugin(owner)}")
                    continue
                table[spec.name] = dataclasses.replace(spec, plugin=plugin_name)
                if info is not None:
                    info.registered.append(f"{word} {spec.name}")

    def _drop_broken(self, tables) -> None:
        """A plugin that broke in a later hook keeps nothing it registered in an earlier one:
        a broken plugin is never half used."""
        broken = {name for name, info in self.pm.info.items() if info.broken}
        for table in tables:
            for name in [n for n, spec in table.items() if spec.plugin in broken]:
                del table[name]
        for name in broken:
            self.pm.info[name].registered.clear()

    def _describe_plugin(self, name: str) -> str:
        return f"built-in plugin '{name}'" if self.pm.is_builtin(name) else f"plugin '{name}'"

    def model(self, name: str) -> ModelSpec:
        return self._lookup(self.models, name, "model")

    def dataset(self, name: str) -> DatasetSpec:
        return self._lookup(self.datasets, name, "dataset")

    def exporter(self, name: str) -> ExporterSpec:
        return self._lookup(self.exporters, name, "exporter")

    def face_detector(self, name: str) -> FaceDetectorSpec:
        return self._lookup(self.face_detectors, name, "face detector")

    def _lookup(self, table: dict[str, T], name: str, word: str) -> T:
        if name in table:
            return table[name]
        known = ", ".join(sorted(table)) or "none"
        close = difflib.get_close_matches(name, table, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        broken = sorted(i.name for i in self.pm.info.values() if i.broken)
        if broken:
            # The name may belong to a plugin that failed to load.
            hint += (f"; plugin(s) {', '.join(broken)} failed to load and may provide it "
                     "(see gantool plugins)")
        raise GantoolError(f"unknown {word} '{name}'{hint}; known: {known}")


_registry: Registry | None = None


def get_registry() -> Registry:
    """The registry of the process-wide plugin manager, built on first use and again
    whenever the manager was replaced."""
    global _registry
    pm = get_plugin_manager()
    if _registry is None or _registry.pm is not pm:
        _registry = Registry(pm)
    return _registry


def lookup_model(name: str) -> ModelSpec:
    return get_registry().model(name)


def list_models(pattern: str = "*", filter_fn: Callable[[ModelSpec], bool] | None = None):
    """Model specs whose name matches a glob ``pattern``, sorted by name."""
    specs = [s for n, s in sorted(get_registry().models.items()) if fnmatch.fnmatch(n, pattern)]
    return [s for s in specs if filter_fn is None or filter_fn(s)]
