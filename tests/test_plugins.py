"""The plugin core: entry-point loading, broken plugins, registry errors, CLI listing."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import types

import export_helpers
import pytest

import translator
from translator.errors import GantoolError
from translator.registry import REGISTRATION_HOOKS, Registry, get_registry, list_models
from translator.specs import DatasetSpec, ExporterSpec, FaceDetectorSpec, FigureSpec

BUILTIN_MODELS = {"dcgan", "wgan", "wgan-gp"}
export_runs = export_helpers.export_runs


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


def test_a_duplicate_model_name_is_refused_naming_the_first_owner(fresh_plugins):
    spec = get_registry().models["dcgan"]

    @translator.hookimpl
    def register_models(register):
        register(spec)

    fresh_plugins.add_plugin(_module("dup", register_models=register_models), "dup")
    Registry(fresh_plugins)
    assert fresh_plugins.info["dup"].refused == [
        "model 'dcgan': already registered by built-in plugin 'dcgan'"]


def test_plugins_command_shows_versions_registrations_and_broken(run_cli, fresh_plugins):
    @translator.hookimpl
    def register_exporters(register):
        register("not a spec")

    fresh_plugins.add_plugin(_module("weird", register_exporters=register_exporters), "weird")
    result = run_cli("plugins")
    assert result.exit_code == 1  # a broken plugin fails the listing, for plugins' CI
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


# -- a third party installed beside gantool ---------------------------------------------------
@pytest.fixture
def install_fake_plugin(tmp_path, monkeypatch):
    """Put a distribution with a ``gantool`` entry point on ``sys.path``, as pip would."""

    def install(entry_point: str, module: str, source: str) -> None:
        dist = tmp_path / f"fake_{module}-1.0.dist-info"
        dist.mkdir()
        (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: fake-{module}\nVersion: 1.0\n")
        (dist / "entry_points.txt").write_text(f"[gantool]\n{entry_point} = {module}\n")
        (tmp_path / f"{module}.py").write_text(source)

    monkeypatch.syspath_prepend(str(tmp_path))
    return install


IMPOSTOR = '''
import translator
from translator.plugins.cyclegan import CycleGANConfig


@translator.hookimpl
def register_models(register):
    for name in ("cyclegan", "impostor-gan"):
        register(translator.ModelSpec(name=name, kind="translation", description="impostor",
                                      config=CycleGANConfig, build=lambda config: None))
'''


def test_a_third_party_reusing_a_builtin_name_is_refused_for_that_name_only(install_fake_plugin):
    # "aaa" sorts before every built-in entry point, and pluggy calls the plugin registered
    # last first: whichever order the loader uses, the built-in name must still win.
    from translator.manager import create_plugin_manager

    install_fake_plugin("aaa", "impostor_plugin", IMPOSTOR)
    pm = create_plugin_manager()
    registry = Registry(pm)
    assert registry.models["cyclegan"].plugin == "cyclegan"
    assert {"cyclegan-unet", "cyclegan-mobile"} <= set(registry.models)
    assert pm.info["cyclegan"].healthy and pm.info["cyclegan"].builtin
    impostor = pm.info["aaa"]
    assert not impostor.broken and not impostor.builtin
    assert impostor.refused == ["model 'cyclegan': already registered by built-in plugin 'cyclegan'"]
    assert registry.models["impostor-gan"].plugin == "aaa"
    assert impostor.registered == ["model impostor-gan"]


def test_between_third_parties_the_first_by_name_wins(fresh_plugins):
    def plugin(name):
        @translator.hookimpl
        def register_models(register):
            register(translator.ModelSpec(name="shared", kind="generation", description=name,
                                          config=object, build=lambda c: None))
        return _module(name, register_models=register_models)

    fresh_plugins.add_plugin(plugin("zed"), "zed")
    fresh_plugins.add_plugin(plugin("abe"), "abe")
    registry = Registry(fresh_plugins)
    assert registry.models["shared"].plugin == "abe"
    assert fresh_plugins.info["zed"].refused == ["model 'shared': already registered by plugin 'abe'"]


def _sample_spec(spec_type: type, name: str):
    """A ``spec_type`` called ``name``, its other required fields filled with stand-ins."""
    fields = [f for f in dataclasses.fields(spec_type) if f.default is dataclasses.MISSING
              and f.default_factory is dataclasses.MISSING]
    return spec_type(**{f.name: name if f.name == "name" else object() for f in fields})


@pytest.mark.parametrize("row", REGISTRATION_HOOKS, ids=lambda row: row.hook)
def test_every_registration_hook_fills_its_table_and_names_its_kind(fresh_plugins, row):
    @translator.hookimpl
    def hook(register):
        register(_sample_spec(row.spec_type, "tabled-thing"))

    fresh_plugins.add_plugin(_module("tabled", **{row.hook: hook}), "tabled")
    registry = Registry(fresh_plugins)
    spec = registry.get(row.spec_type, "tabled-thing")
    assert registry.specs(row.spec_type)["tabled-thing"] is spec and spec.plugin == "tabled"
    assert fresh_plugins.info["tabled"].registered == [f"{row.word} tabled-thing"]
    with pytest.raises(GantoolError, match=f"^unknown {row.word} 'tabled-thin'.*did you mean"):
        registry.get(row.spec_type, "tabled-thin")
    # What another hook registers never lands in this table.
    assert all("tabled-thing" not in registry.specs(other.spec_type)
               for other in REGISTRATION_HOOKS if other is not row)


@pytest.mark.parametrize("row", REGISTRATION_HOOKS, ids=lambda row: row.hook)
def test_every_registration_hook_refuses_another_spec_type(fresh_plugins, row):
    @translator.hookimpl
    def hook(register):
        register(object())

    fresh_plugins.add_plugin(_module("wrong", **{row.hook: hook}), "wrong")
    Registry(fresh_plugins)
    info = fresh_plugins.info["wrong"]
    assert info.broken and f"expects a {row.spec_type.__name__}" in info.error


def test_the_shorthands_are_the_tables_of_their_spec_types():
    registry = get_registry()
    assert registry.models is registry.specs(translator.ModelSpec)
    assert registry.model("cyclegan") is registry.get(translator.ModelSpec, "cyclegan")
    assert registry.exporters is registry.specs(ExporterSpec)
    assert registry.datasets is registry.specs(DatasetSpec)
    assert registry.face_detectors is registry.specs(FaceDetectorSpec)
    assert registry.figures is registry.specs(FigureSpec)


def _command_plugin():
    import click

    @translator.hookimpl
    def register_commands(cli):
        @cli.command("train")
        def hijack():
            """Not gantool's train."""

        @cli.command("hello")
        def hello():
            """A new command."""
            click.echo("hello from a plugin")

    return _module("cmds", register_commands=register_commands)


def test_a_plugin_command_may_not_replace_a_core_command(fresh_plugins, run_cli):
    import click
    from click.testing import CliRunner
    from translator.cli import add_plugin_commands, cli

    fresh_plugins.add_plugin(_command_plugin(), "cmds")
    group = click.Group("gantool", commands=dict(cli.commands))
    add_plugin_commands(group, fresh_plugins)
    assert group.commands["train"] is cli.commands["train"]
    assert CliRunner().invoke(group, ["hello"]).output == "hello from a plugin\n"
    info = fresh_plugins.info["cmds"]
    assert info.refused == ["command 'train': clashes with a core command"]
    assert info.registered == ["command hello"]
    listing = run_cli("plugins")
    assert "registers: command hello" in listing.output
    assert "refused: command 'train': clashes with a core command" in listing.output
    assert listing.exit_code == 1


def test_a_failing_register_commands_adds_none_of_its_commands(fresh_plugins):
    import click

    @translator.hookimpl
    def register_commands(cli):
        @cli.command("half")
        def half():
            pass

        raise RuntimeError("gave up half-way")

    fresh_plugins.add_plugin(_module("half", register_commands=register_commands), "half")
    from translator.cli import add_plugin_commands

    group = click.Group("gantool")
    add_plugin_commands(group, fresh_plugins)
    assert "half" not in group.commands
    assert "gave up half-way" in fresh_plugins.info["half"].error
    assert "test_plugins.py:" in fresh_plugins.info["half"].error


def test_trace_switch_prints_the_register_hooks_and_their_plugins():
    env = {**os.environ, "GANTOOL_TRACE_PLUGINS": "1"}
    out = subprocess.run([sys.executable, "-m", "translator.cli", "plugins"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "register_models(register) -> cyclegan" in out.stderr
    assert "register_models(register) -> dcgan" in out.stderr
    assert "register_exporters(register) -> onnx" in out.stderr


def test_plugins_command_fails_when_a_plugin_is_broken(run_cli, fresh_plugins):
    assert run_cli("plugins").exit_code == 0
    fresh_plugins.mark_broken("dcgan", "ImportError: gone")
    result = run_cli("plugins")
    assert result.exit_code == 1 and "error: ImportError: gone" in result.output


def test_an_import_failure_names_the_file_and_line(install_fake_plugin):
    from translator.manager import create_plugin_manager

    install_fake_plugin("crashes", "crashing_plugin", "import translator\n\nraise ValueError('bad')\n")
    pm = create_plugin_manager()
    error = pm.info["crashes"].error
    assert error is not None
    assert error.startswith("ValueError: bad (") and error.endswith("crashing_plugin.py:3)")


def test_an_unknown_model_hints_at_a_broken_plugin(run_cli, fresh_plugins):
    fresh_plugins.mark_broken("dcgan", "ImportError: gone")
    result = run_cli("train", "typo-gan", "--steps", "1")
    assert result.exit_code != 0
    assert "plugin(s) dcgan failed to load and may provide it (see gantool plugins)" in result.output


def test_the_manager_does_not_import_the_registry():
    # The registry builds on the manager, never the other way round (no import circle).
    code = "import sys, translator.manager; print('translator.registry' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- size_multiple: declared by translation generators, checked by the exporter -------------
def test_a_translation_generator_must_state_its_size_multiple():
    from torch import nn

    from translator.training.gan import ExportableGenerator

    with pytest.raises(GantoolError, match="needs size_multiple"):
        ExportableGenerator(nn.Identity(), "translation")
    assert ExportableGenerator(nn.Identity(), "generation", latent_dim=4).size_multiple == 1


def test_a_wrong_size_multiple_is_found_and_the_right_one_named():
    from translator.plugins.cyclegan.networks import ResnetGenerator

    from translator.training.gan import ExportableGenerator

    net = ResnetGenerator(3, 3, ngf=4, n_blocks=1)  # two stride-2 steps: needs multiples of 4
    ExportableGenerator(net, "translation", size_multiple=4).check_size_multiple(32)
    with pytest.raises(GantoolError, match=r"multiples of its size_multiple 2; it works at multiples "
                                           r"of 4: declare ExportableGenerator\(size_multiple=4\)"):
        ExportableGenerator(net, "translation", size_multiple=2).check_size_multiple(32)


def test_export_refuses_a_generator_whose_size_multiple_is_wrong(export_runs, monkeypatch, tmp_path):
    import dataclasses

    from translator.plugins.cyclegan.model import CycleGAN

    from translator.specs import ExportRequest

    run = export_runs("cyclegan")
    declared = CycleGAN.generators

    def understated(self):
        return {k: dataclasses.replace(g, size_multiple=1) for k, g in declared(self).items()}

    monkeypatch.setattr(CycleGAN, "generators", understated)
    exporter = get_registry().exporter("onnx")
    with pytest.raises(GantoolError, match="it works at multiples of 4"):
        exporter.export(ExportRequest(run, output=tmp_path / "out", options={"log": None}))
    assert not (tmp_path / "out").exists()


def test_a_plugin_that_breaks_in_a_later_hook_keeps_nothing(fresh_plugins):
    spec = get_registry().models["dcgan"]

    class HalfBroken:
        @staticmethod
        @translator.hookimpl
        def register_models(register):
            register(dataclasses.replace(spec, name="half-gan"))

        @staticmethod
        @translator.hookimpl
        def register_exporters(register):
            raise RuntimeError("no exporter today")

    fresh_plugins.add_plugin(HalfBroken, "half")
    registry = Registry(fresh_plugins)
    assert "half-gan" not in registry.models
    assert fresh_plugins.info["half"].broken and fresh_plugins.info["half"].registered == []
