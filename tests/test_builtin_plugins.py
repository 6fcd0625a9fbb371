"""The built-in data sets and face detectors are real plugins: the core never imports them
and reaches them only through the registry, so disabling one takes its names away."""

from __future__ import annotations

import ast
import types
from pathlib import Path

import pytest

import translator
from translator import manager
from translator.errors import GantoolError
from translator.registry import Registry
from translator.specs import FaceDetectorSpec

ROOT = Path(__file__).resolve().parents[1]
#: The core's folders and their import names; plugins/ and exporters/ are plugins.
CORE = {"translator": ROOT / "translator", "translator.cli": ROOT / "cli"}
BUILTIN_DATASETS = {"demo", "digits", "celeba", "cyclegan-folders", "domain-folders", "image-folder"}


def imported_names(path: Path, package: str) -> set[str]:
    """Every module a file imports, relative imports resolved against ``package``, plus
    ``importlib.import_module("...")`` calls with a literal name."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            parts = package.split(".")
            base = parts[: len(parts) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant)):
            names.add(str(node.args[0].value))
    return names


def core_imports() -> dict[str, set[str]]:
    out = {}
    for package, folder in CORE.items():
        for path in folder.rglob("*.py"):
            sub = path.parent.relative_to(folder).parts
            out[str(path.relative_to(ROOT))] = imported_names(path, ".".join((package, *sub)))
    return out


def test_the_core_never_imports_a_builtin_plugin():
    imports = core_imports()
    assert "translator/demo.py" in imports and "translator.registry" in imports["translator/demo.py"]
    offenders = {file: sorted(n for n in names if n == "translator.plugins"
                              or n.startswith("translator.plugins."))
                 for file, names in imports.items()}
    assert {file: names for file, names in offenders.items() if names} == {}


def test_the_import_check_resolves_relative_imports(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("from ..plugins.datasets import demo\nfrom .. import plugins\n")
    assert {"translator.plugins.datasets.demo", "translator.plugins"} <= imported_names(
        source, "translator.runtime")


@pytest.fixture
def plugins_without(monkeypatch):
    """Make the process-wide manager one without the named entry points; restored after."""
    saved = manager._manager

    def make(*disabled: str) -> manager.PluginManager:
        monkeypatch.setenv("GANTOOL_DISABLE_PLUGINS", ",".join(disabled))
        pm = manager.create_plugin_manager()
        manager.set_plugin_manager(pm)
        return pm

    yield make
    manager.set_plugin_manager(saved)


def test_the_builtin_data_sets_come_only_through_the_data_plugin(plugins_without, run_cli):
    assert BUILTIN_DATASETS <= set(Registry(manager.create_plugin_manager()).datasets)
    pm = plugins_without("builtin_data")
    registry = Registry(pm)
    assert not BUILTIN_DATASETS & set(registry.datasets)
    assert "cyclegan" in registry.models and "haar" in registry.face_detectors
    result = run_cli("train", "cyclegan", "--data", "digits", "--steps", "1")
    assert result.exit_code == 1
    assert "--data digits: no such folder or built-in set (none registered" in result.output


def test_the_core_has_no_face_detector_of_its_own(plugins_without):
    from translator.face_detectors import create_detector

    plugins_without("haar")
    with pytest.raises(GantoolError, match="unknown face detector 'haar'; known: none"):
        create_detector("haar")


class _TwoFaces:
    """A stand-in detector that always finds the same two boxes."""

    def detect(self, bgr):
        return [(10, 10, 40, 40), (100, 100, 40, 40)]


def test_serve_takes_its_face_detector_from_the_registry(plugins_without, tmp_path):
    from runtime_helpers import make_invert_model

    from translator.runtime.options import RuntimeOptions
    from translator.serve.service import Service

    pm = plugins_without("haar")
    stand_in = types.ModuleType("two_faces")
    vars(stand_in).update(register_face_detectors=translator.hookimpl(
        lambda register: register(FaceDetectorSpec("haar", "two fixed boxes", _TwoFaces))))
    pm.add_plugin(stand_in, "two_faces")
    service = Service([make_invert_model(tmp_path / "photo2negative.onnx")], RuntimeOptions(provider="cpu"),
                      log=lambda m: None)
    # The real Haar cascade finds one face in the astronaut; the registered stand-in, two.
    _, _, headers = service.translate("photo2negative", sample="astronaut", faces=True)
    assert headers["X-Gantool-Faces"] == "2"
