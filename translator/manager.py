"""The plugin manager: loads the ``gantool`` entry-point group, built-ins included.

Environment switches:

- ``GANTOOL_LOAD_PLUGINS=a,b``: load only these entry points (empty: load none).
- ``GANTOOL_DISABLE_PLUGINS=a,b``: skip these entry points.
- ``GANTOOL_TRACE_PLUGINS=1``: print every hook call and its result to stderr.
"""

from __future__ import annotations

import importlib.metadata
import os
import sys
from dataclasses import dataclass, field
from types import ModuleType

import pluggy

from . import hookspecs

ENTRY_POINT_GROUP = "gantool"


@dataclass
class PluginInfo:
    """One entry in ``gantool plugins``."""

    name: str
    module: str
    version: str | None
    hooks: list[str] = field(default_factory=list)
    registered: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def broken(self) -> bool:
        return self.error is not None


class PluginManager(pluggy.PluginManager):
    """A pluggy manager that remembers which plugins failed to load, and why."""

    def __init__(self) -> None:
        super().__init__(ENTRY_POINT_GROUP)
        self.add_hookspecs(hookspecs)
        self.info: dict[str, PluginInfo] = {}

    def mark_broken(self, name: str, reason: str) -> None:
        info = self.info.setdefault(name, PluginInfo(name, "?", None))
        info.error = reason
        plugin = self.get_plugin(name)
        if plugin is not None:
            self.unregister(plugin)

    def add_plugin(self, module: ModuleType, name: str, version: str | None = None) -> None:
        """Register a plugin module (or object) by hand, as tests and embedding code do."""
        self.register(module, name=name)
        self.info[name] = PluginInfo(name, getattr(module, "__name__", repr(module)), version)
        self._validate()

    def _validate(self) -> None:
        # check_pending turns a misspelled hook name into an error; the culprit is disabled
        # rather than taking every other plugin down with it.
        while True:
            try:
                self.check_pending()
                return
            except pluggy.PluginValidationError as exc:
                name = self.get_name(exc.plugin) or repr(exc.plugin)
                self.mark_broken(name, str(exc))


def _names_from_env(var: str) -> set[str] | None:
    raw = os.environ.get(var)
    if raw is None:
        return None
    return {n.strip() for n in raw.split(",") if n.strip()}


def create_plugin_manager() -> PluginManager:
    """Build a fresh manager and load every plugin of the ``gantool`` entry-point group."""
    pm = PluginManager()
    only = _names_from_env("GANTOOL_LOAD_PLUGINS")
    disabled = _names_from_env("GANTOOL_DISABLE_PLUGINS") or set()
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in disabled or (only is not None and ep.name not in only):
            continue
        if pm.get_plugin(ep.name) is not None or ep.name in pm.info:
            continue
        version = ep.dist.version if ep.dist is not None else None
        pm.info[ep.name] = PluginInfo(ep.name, ep.value, version)
        try:
            module = ep.load()
            pm.register(module, name=ep.name)
        except Exception as exc:  # a broken plugin must not stop the others
            pm.mark_broken(ep.name, f"{type(exc).__name__}: {exc}")
    pm._validate()
    if os.environ.get("GANTOOL_TRACE_PLUGINS"):
        pm.trace.root.setwriter(lambda msg: sys.stderr.write(msg))
        pm.enable_tracing()
    for name, info in pm.info.items():
        plugin = pm.get_plugin(name)
        if plugin is not None:
            info.hooks = sorted(caller.name for caller in pm.get_hookcallers(plugin) or [])
    return pm


_manager: PluginManager | None = None


def get_plugin_manager() -> PluginManager:
    """The process-wide manager, created on first use (never at import time)."""
    global _manager
    if _manager is None:
        _manager = create_plugin_manager()
    return _manager


def set_plugin_manager(pm: PluginManager | None) -> None:
    """Replace (or with ``None``, forget) the process-wide manager; used by tests."""
    global _manager
    _manager = pm
    from . import registry

    registry.reset_registry()
