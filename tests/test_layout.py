"""The tree as DESIGN.md draws it: every module in a layer, imports only downwards, no circles,
and every package's docstring naming its import name."""

from __future__ import annotations

import ast
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def package_dirs() -> dict[str, str]:
    with open(ROOT / "pyproject.toml", "rb") as f:
        mapping: dict[str, str] = tomllib.load(f)["tool"]["setuptools"]["package-dir"]
    return mapping


def product_modules() -> dict[str, Path]:
    """Import name -> file, for every module of the installed layout."""
    modules: dict[str, Path] = {}
    for package, folder in package_dirs().items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            name = ".".join([package, *parts])
            # The root folder holds the mapped folders' names too; the mapping wins.
            modules.setdefault(name, path)
    return modules


def imported_names(name: str, path: Path) -> Iterator[str]:
    """Every module name an import statement anywhere in the file may refer to."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([node.module] if node.module else [])])
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def import_graph() -> dict[str, set[str]]:
    """Module -> the product modules it imports (not the packages it lives in)."""
    modules = product_modules()

    def resolve(target: str) -> str | None:
        while target and target not in modules:
            target = target.rpartition(".")[0]
        return target or None

    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = {resolve(t) for t in imported_names(name, path)}
        graph[name] = {t for t in targets
                       if t is not None and t != name and not name.startswith(f"{t}.")}
    return graph


def layer_table() -> dict[str, int]:
    """DESIGN.md's layers: module name (a prefix of the modules below it) -> layer."""
    text = (ROOT / "DESIGN.md").read_text()
    section = text.split("## Layers", 1)[1].split("\n## ", 1)[0]
    layers: dict[str, int] = {}
    for row in re.findall(r"^\| (\d+) \| (.+?) \|", section, flags=re.M):
        for module in re.findall(r"`([\w.]+)`", row[1]):
            layers[module] = int(row[0])
    return layers


def layer_of(module: str, layers: dict[str, int]) -> int | None:
    while module:
        if module in layers:
            return layers[module]
        module = module.rpartition(".")[0]
    return None


def find_circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of ``graph`` as a path that returns to its start, or None."""
    done: set[str] = set()
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        if node in path:
            return [*path[path.index(node):], node]
        if node in done:
            return None
        path.append(node)
        for target in sorted(graph.get(node, ())):
            circle = visit(target)
            if circle:
                return circle
        path.pop()
        done.add(node)
        return None

    for start in sorted(graph):
        circle = visit(start)
        if circle:
            return circle
    return None


def test_every_module_is_in_a_layer_and_imports_only_downwards() -> None:
    layers = layer_table()
    assert len(layers) > 10, "DESIGN.md's layer table went missing"
    graph = import_graph()
    unplaced = sorted(m for m in graph if layer_of(m, layers) is None)
    assert not unplaced, f"modules in no layer of DESIGN.md: {unplaced}"
    climbs = [f"{m} (layer {layer_of(m, layers)}) imports {t} (layer {layer_of(t, layers)})"
              for m, targets in graph.items() for t in sorted(targets)
              if (layer_of(t, layers) or 0) > (layer_of(m, layers) or 0)]
    assert not climbs, "\n".join(climbs)


def test_no_module_is_in_an_import_circle() -> None:
    assert find_circle(import_graph()) is None


def test_the_checks_see_a_climb_and_a_circle() -> None:
    layers = {"pkg": 2, "pkg.low": 1}
    assert layer_of("pkg.low.deep", layers) == 1 and layer_of("other", layers) is None
    assert find_circle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_circle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


@pytest.mark.parametrize("module", sorted(m for m, p in product_modules().items()
                                          if p.name == "__init__.py"))
def test_each_package_docstring_names_its_import_name_first(module: str) -> None:
    source = product_modules()[module].read_text()
    first_line = (ast.get_docstring(ast.parse(source)) or "").split("\n", 1)[0]
    assert f"``{module}``" in first_line, first_line


def test_a_new_plugin_folder_is_installed_without_listing_it(tmp_path: Path) -> None:
    import runpy

    walk = runpy.run_path(str(ROOT / "setup.py"))["mapped_packages"]
    (tmp_path / "pyproject.toml").write_text(
        '[tool.setuptools]\npackage-dir = { "translator" = "translator", '
        '"translator.plugins" = "plugins" }\n')
    for folder in ("translator/data", "plugins/newgan", "plugins/newgan/nets", "plugins/notes"):
        (tmp_path / folder).mkdir(parents=True)
    for folder in ("translator", "translator/data", "plugins", "plugins/newgan",
                   "plugins/newgan/nets"):
        (tmp_path / folder / "__init__.py").write_text("")
    assert walk(tmp_path) == ["translator", "translator.data", "translator.plugins",
                              "translator.plugins.newgan", "translator.plugins.newgan.nets"]
    assert set(walk(ROOT)) >= {"translator.training", "translator.plugins.cyclegan"}
