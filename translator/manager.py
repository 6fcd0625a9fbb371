"""The plugin manager: loads the ``gantool`` entry-point group, built-ins included.

Environment switches:

- ``GANTOOL_LOAD_PLUGINS=a,b``: load only these entry points (empty: load none).
- ``GANTOOL_DISABLE_PLUGINS=a,b``: skip these entry points.
- ``GANTOOL_TRACE_PLUGINS=1``: print every hook call and its result to stderr.

This module knows nothing of what plugins register: :mod:`translator.registry` builds on
it (and imports it; never the other way round).
"""

from __future__ import annotations

import importlib.metadata
import os
import sys
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy

from . import hookspecs

ENTRY_POINT_GROUP = "gantool"
#: The distribution whose entry points are the built-in plugins; their names always win.
BUILTIN_DISTRIBUTION = "gantool"


@dataclass
class PluginInfo:
    """One entry in ``gantool plugins``."""

    name: str
    module: str
    version: str | None
    #: Shipped with gantool: its names win over any third party's, whatever the load order.
    builtin: bool = False
    hooks: list[str] = field(default_factory=list)
    registered: list[str] = field(default_factory=list)
    #: The whole plugin failed (import, a hook raised, a misspelled hook): nothing of it is used.
    error: str | None = None
    #: Single registrations that were refused (a name already taken); the rest works.
    refused: list[str] = field(default_factory=list)

    @property
    def broken(self) -> bool:
        return self.error is not None

    @property
    def healthy(self) -> bool:
        return self.error is None and not self.refused


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

    def add_plugin(self, module: ModuleType, name: str, version: str | None = None,
                   builtin: bool = False) -> None:
        """Register a plugin module (or object) by hand, as tests and embedding code do."""
        self.register(module, name=name)
        self.info[name] = PluginInfo(name, getattr(module, "__name__", repr(module)), version,
                                     builtin)
        self._validate()

    def is_builtin(self, name: str) -> bool:
        info = self.info.get(name)
        return info is not None and info.builtin

    def call_each(self, hook_name: str,
                  kwargs_for: Callable[[str], dict[str, Any]]) -> Iterator[tuple[str, Any]]:
        """Call every implementation of ``hook_name`` on its own; yield (plugin, result).

        Built-in plugins come first, then the others by name, so which registration wins
        never depends on the order of entry points on disk. Each call goes through pluggy
        (a caller restricted to one plugin), so ``GANTOOL_TRACE_PLUGINS`` shows it; one
        that raises marks only its own plugin broken, with the file and line, and is not
        yielded. ``kwargs_for(plugin_name)`` gives each call its arguments (e.g. a
        ``register`` callable that knows who registers). The caller's code after each
        ``yield`` runs before the next plugin is called.
        """
        impls = getattr(self.hook, hook_name).get_hookimpls()
        everyone = [impl.plugin for impl in impls]
        for impl in sorted(impls, key=lambda i: (not self.is_builtin(i.plugin_name), i.plugin_name)):
            others = [p for p in everyone if p is not impl.plugin]
            try:
                result = self.subset_hook_caller(hook_name, remove_plugins=others)(
                    **kwargs_for(impl.plugin_name))
            except Exception as exc:  # a broken plugin must not stop the others
                self.mark_broken(impl.plugin_name, f"{hook_name}: {describe_error(exc)}")
                continue
            yield impl.plugin_name, result

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


def describe_error(exc: BaseException) -> str:
    """``Type: message (file:line)``, the line being where the plugin's code failed."""
    where = ""
    if isinstance(exc, SyntaxError) and exc.filename:
        where = f"{exc.filename}:{exc.lineno}"
    else:
        # The innermost frame outside the loading machinery is the plugin's own line.
        own = [f for f in traceback.extract_tb(exc.__traceback__) if not _is_machinery(f.filename)]
        if own:
            where = f"{own[-1].filename}:{own[-1].lineno}"
    text = f"{type(exc).__name__}: {exc}"
    return f"{text} ({where})" if where else text


_CORE_FILES = {str(Path(__file__).resolve()), str(Path(__file__).with_name("registry.py").resolve())}


def _is_machinery(filename: str) -> bool:
    parts = Path(filename).parts
    return (filename.startswith("<frozen") or "importlib" in parts or "pluggy" in parts
            or str(Path(filename).resolve()) in _CORE_FILES)


def _trace_to_stderr(pm: PluginManager) -> None:
    """Print each hook call (with the plugins it reaches) and its outcome to stderr."""

    def before(hook_name: str, impls: Sequence[pluggy.HookImpl], kwargs: Mapping[str, Any]) -> None:
        who = ", ".join(impl.plugin_name for impl in impls) or "no plugin"
        sys.stderr.write(f"gantool plugins: {hook_name}({', '.join(kwargs)}) -> {who}\n")

    def after(outcome: pluggy.Result[Any], hook_name: str, impls: Sequence[pluggy.HookImpl],
              kwargs: Mapping[str, Any]) -> None:
        result = (f"raised {describe_error(outcome.exception)}" if outcome.exception
                  else f"returned {outcome.get_result()!r}")
        sys.stderr.write(f"gantool plugins: {hook_name} {result}\n")

    pm.add_hookcall_monitoring(before, after)


def _names_from_env(var: str) -> set[str] | None:
    raw = os.environ.get(var)
    if raw is None:
        return None
    return {n.strip() for n in raw.split(",") if n.strip()}


def _is_builtin(ep: importlib.metadata.EntryPoint) -> bool:
    return ep.dist is not None and ep.dist.name == BUILTIN_DISTRIBUTION


def create_plugin_manager() -> PluginManager:
    """Build a fresh manager and load every plugin of the ``gantool`` entry-point group."""
    pm = PluginManager()
    only = _names_from_env("GANTOOL_LOAD_PLUGINS")
    disabled = _names_from_env("GANTOOL_DISABLE_PLUGINS") or set()
    entry_points = sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP),
                          key=lambda ep: (not _is_builtin(ep), ep.name))
    for ep in entry_points:
        if ep.name in disabled or (only is not None and ep.name not in only):
            continue
        if pm.get_plugin(ep.name) is not None or ep.name in pm.info:
            continue
        version = ep.dist.version if ep.dist is not None else None
        pm.info[ep.name] = PluginInfo(ep.name, ep.value, version, _is_builtin(ep))
        try:
            module = ep.load()
            pm.register(module, name=ep.name)
        except Exception as exc:  # a broken plugin must not stop the others
            pm.mark_broken(ep.name, describe_error(exc))
    pm._validate()
    if os.environ.get("GANTOOL_TRACE_PLUGINS"):
        _trace_to_stderr(pm)
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
    """Replace (or with ``None``, forget) the process-wide manager; used by tests. The
    registry notices the new manager by itself."""
    global _manager
    _manager = pm
