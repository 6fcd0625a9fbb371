"""Shared fixtures: a CLI runner, small training configs, a fresh plugin manager."""

from __future__ import annotations

import os

import pytest

# Two cores: keep torch from oversubscribing them when tests run side by side.
os.environ.setdefault("OMP_NUM_THREADS", "2")


def _invoker():
    from click.testing import CliRunner
    from translator.cli import cli

    def invoke(*args: str, **kwargs):
        return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False, **kwargs)

    return invoke


@pytest.fixture
def run_cli():
    """Invoke ``gantool`` in-process; returns click's Result (exit_code, output)."""
    return _invoker()


@pytest.fixture(scope="module")
def run_cli_module():
    """:func:`run_cli` for module-scoped fixtures (a run trained once per test module)."""
    return _invoker()


@pytest.fixture
def fresh_plugins():
    """A plugin manager that a test may change; the process-wide one is restored after."""
    from translator import manager

    saved = manager._manager
    manager.set_plugin_manager(manager.create_plugin_manager())
    try:
        yield manager.get_plugin_manager()
    finally:
        manager.set_plugin_manager(saved)
