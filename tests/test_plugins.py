"""The plugin core: entry-point loading, broken plugins, registry errors, CLI listing."""

from __future__ import annotations

import subprocess
import sys
import types

import pytest

import translator
from translator.errors import GantoolError
from translator.registry import Registry, get_registry, list_models

BUILTIN_MODELS = {"dcgan", "wgan", "wgan-gp"}


def test_builtin_plugins_load_through_the_entry_point_group():
    registry = get_registry()
    assert BUILTIN_MODELS <= set(registry.models)
    assert {"demo", "digits", "celeba"} <= set(registry.datasets)
    assert registry.models["dcgan"].plugin == "dcgan"
    info = registry.pm.info["dcgan"]
    assert not info.broken and "register_models" in info.hooks


def test_unknown_model_lists_known_and_suggests():
    with pytest.raises(GantoolError) as exc:
        get_registry().model("dcgann")
    message = str(exc.value)
    assert "unknown model 'dcgann'" in message and "did you mean 'dcgan'" in message
    assert "wgan-gp" in message


def test_list_models_filters_by_glob():
    names = [s.name for s in list_models("wgan*")]
    assert names == ["wgan", "wgan-gp"]


def _module(name: str, **attrs) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    return module


def test_a_broken_plugin_is_reported_and_the_others_still_work(fresh_plugins):
    @translator.hookimpl
    def register_models(register):
        raise RuntimeError("boom")

    fresh_plugins.add_plugin(_module("bad_plugin", register_models=register_models), "bad")
    registry = Registry(fresh_plugins)
    assert fresh_plugins.info["bad"].broken
    assert "boom" in fresh_plugins.info["bad"].error
    assert BUILTIN_MODELS <= set(registry.models)


def test_a_misspelled_hook_marks_the_plugin_broken(fresh_plugins):
    @translator.hookimpl
    def register_modles(register):  # the typo is the point
        pass

    fresh_plugins.add_plugin(_module("typo", register_modles=register_modles), "typo")
    assert fresh_plugins.info["typo"].broken
    assert "register_modles" in fresh_plugins.info["typo"].error


def test_duplicate_model_names_name_the_first_owner(fresh_plugins):
    spec = get_registry().models["dcgan"]

    @translator.hookimpl
    def register_models(register):
        register(spec)

    fresh_plugins.add_plugin(_module("dup", register_models=register_models), "dup")
    Registry(fresh_plugins)
    assert "already registered by plugin 'dcgan'" in fresh_plugins.info["dup"].error


def test_plugins_command_shows_versions_registrations_and_broken(run_cli, fresh_plugins):
    @translator.hookimpl
    def register_exporters(register):
        register("not a spec")

    fresh_plugins.add_plugin(_module("weird", register_exporters=register_exporters), "weird")
    result = run_cli("plugins")
    assert result.exit_code == 0
    assert "dcgan 0.1.0" in result.output and "registers: model dcgan" in result.output
    assert "weird" in result.output and "BROKEN" in result.output
    assert "expects a ExporterSpec" in result.output


def test_models_command_lists_descriptions_and_parameter_counts(run_cli):
    result = run_cli("models")
    assert result.exit_code == 0
    assert "wgan-gp" in result.output and "gradient penalty" in result.output
    assert "generator" in result.output and "M parameters" in result.output


def test_disable_switch_skips_a_plugin(monkeypatch):
    from translator.manager import create_plugin_manager

    monkeypatch.setenv("GANTOOL_DISABLE_PLUGINS", "dcgan")
    registry = Registry(create_plugin_manager())
    assert not BUILTIN_MODELS & set(registry.models)
    assert "demo" in registry.datasets


def test_help_is_fast_because_it_does_not_import_torch():
    code = (
        "import sys\nfrom translator.cli import cli\n"
        "try:\n    cli.main(['--help'], standalone_mode=False)\nexcept SystemExit:\n    pass\n"
        "print('torch' in sys.modules, 'cv2' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False False"


def test_unknown_model_on_the_command_line_is_one_line(run_cli):
    result = run_cli("train", "dcgann", "--steps", "1")
    assert result.exit_code != 0
    assert "unknown model 'dcgann'" in result.output
    assert "Traceback" not in result.output
