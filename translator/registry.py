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
from dataclasses import dataclass
from typing import Any, TypeVar

from .errors import GantoolError
from .manager import PluginManager, get_plugin_manager
from .specs import DatasetSpec, ExporterSpec, FaceDetectorSpec, FigureSpec, ModelSpec

T = TypeVar("T")


@dataclass(frozen=True)
class RegistrationHook:
    """A hook whose implementations call ``register(spec)``, and how the registry keeps them.

    Adding such a hook is: its hookspec (:mod:`translator.hookspecs`), its spec type
    (:mod:`translator.specs`), a row of :data:`REGISTRATION_HOOKS` and a row of the hook
    table in ``docs/plugins.md``; tests check that the four agree.
    """

    #: The hookspec's name, e.g. ``"register_models"``.
    hook: str
    #: What ``register()`` accepts; :meth:`Registry.specs` and :meth:`Registry.get` take it.
    spec_type: type
    #: One of them in messages (``unknown face detector 'x'``, ``gantool plugins``).
    word: str


REGISTRATION_HOOKS: tuple[RegistrationHook, ...] = (
    RegistrationHook("register_models", ModelSpec, "model"),
    RegistrationHook("register_datasets", DatasetSpec, "dataset"),
    RegistrationHook("register_exporters", ExporterSpec, "exporter"),
    RegistrationHook("register_face_detectors", FaceDetectorSpec, "face detector"),
    RegistrationHook("register_figures", FigureSpec, "figure"),
)
#: Hooks that register no specs: ``register_commands(cli)`` adds click commands
#: (:func:`translator.cli.add_plugin_commands` collects them).
OTHER_HOOKS: tuple[str, ...] = ("register_commands",)
_BY_SPEC_TYPE = {row.spec_type: row for row in REGISTRATION_HOOKS}


class Registry:
    """Everything registered by the loaded plugins: per spec type, keyed by name."""

    def __init__(self, pm: PluginManager) -> None:
        self.pm = pm
        self._tables: dict[type, dict[str, Any]] = {}
        for row in REGISTRATION_HOOKS:
            self._tables[row.spec_type] = self._collect(row)
        self._drop_broken()

    def specs(self, spec_type: type[T]) -> dict[str, T]:
        """Every registered spec of ``spec_type``, by name."""
        return self._tables[spec_type]

    def get(self, spec_type: type[T], name: str) -> T:
        """The ``spec_type`` called ``name``; else a :class:`GantoolError` that lists the
        known names and suggests a close one."""
        return self._lookup(self._tables[spec_type], name, _BY_SPEC_TYPE[spec_type].word)

    # Shorthands for the spec types the core looks up most.
    @property
    def models(self) -> dict[str, ModelSpec]:
        return self.specs(ModelSpec)

    @property
    def datasets(self) -> dict[str, DatasetSpec]:
        return self.specs(DatasetSpec)

    @property
    def exporters(self) -> dict[str, ExporterSpec]:
        return self.specs(ExporterSpec)

    @property
    def face_detectors(self) -> dict[str, FaceDetectorSpec]:
        return self.specs(FaceDetectorSpec)

    @property
    def figures(self) -> dict[str, FigureSpec]:
        return self.specs(FigureSpec)

    def model(self, name: str) -> ModelSpec:
        return self.get(ModelSpec, name)

    def dataset(self, name: str) -> DatasetSpec:
        return self.get(DatasetSpec, name)

    def exporter(self, name: str) -> ExporterSpec:
        return self.get(ExporterSpec, name)

    def face_detector(self, name: str) -> FaceDetectorSpec:
        return self.get(FaceDetectorSpec, name)

    def _collect(self, row: RegistrationHook) -> dict[str, Any]:
        table: dict[str, Any] = {}
        pending: dict[str, list[Any]] = {}

        def kwargs_for(plugin_name: str) -> dict[str, Any]:
            added = pending.setdefault(plugin_name, [])

            def register(spec: Any) -> None:
                if not isinstance(spec, row.spec_type):
                    raise TypeError(f"register() expects a {row.spec_type.__name__}, "
                                    f"got {spec!r}")
                added.append(spec)

            return {"register": register}

        # Only plugins whose call succeeded are yielded; a failed one adds nothing.
        for plugin_name, _ in self.pm.call_each(row.hook, kwargs_for):
            info = self.pm.info.get(plugin_name)
            for spec in pending[plugin_name]:
                if spec.name in table:
                    owner = table[spec.name].plugin
                    if info is not None:
                        info.refused.append(f"{row.word} '{spec.name}': already registered by "
                                            f"{self._describe_plugin(owner)}")
                    continue
                table[spec.name] = dataclasses.replace(spec, plugin=plugin_name)
                if info is not None:
                    info.registered.append(f"{row.word} {spec.name}")
        return table

    def _drop_broken(self) -> None:
        """A plugin that broke in a later hook keeps nothing it registered in an earlier one:
        a broken plugin is never half used."""
        broken = {name for name, info in self.pm.info.items() if info.broken}
        for table in self._tables.values():
            for name in [n for n, spec in table.items() if spec.plugin in broken]:
                del table[name]
        for name in broken:
            self.pm.info[name].registered.clear()

    def _describe_plugin(self, name: str) -> str:
        return f"built-in plugin '{name}'" if self.pm.is_builtin(name) else f"plugin '{name}'"

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
