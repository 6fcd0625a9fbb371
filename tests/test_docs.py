"""Docs that must not drift from the code: the hook table, the folder-to-package map."""

from __future__ import annotations

import inspect
import re
import tomllib
from pathlib import Path

from translator import hookspecs

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "plugins.md"


def documented_hooks() -> dict[str, str]:
    """``{hook: "register"}`` from the guide's hook reference table."""
    table = GUIDE.read_text().split("## Hook reference", 1)[1]
    return dict(re.findall(r"^\| `(\w+)\(([^)]*)\)` \|", table, re.MULTILINE))


def declared_hooks() -> dict[str, str]:
    """``{hook: "register"}`` from translator/hookspecs.py."""
    return {name: ", ".join(inspect.signature(fn).parameters)
            for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
            if hasattr(fn, "gantool_spec")}


def test_every_hook_is_in_the_guide_with_its_signature_and_nothing_else():
    assert declared_hooks()  # the marker attribute is found at all
    assert documented_hooks() == declared_hooks()


def test_every_hook_has_a_docstring_that_says_what_register_takes():
    for name, fn in inspect.getmembers(hookspecs, inspect.isfunction):
        if hasattr(fn, "gantool_spec"):
            assert fn.__doc__ and ":param" in fn.__doc__, name


def test_each_mapped_folder_says_its_import_name_where_readers_look_first():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    mapping = config["tool"]["setuptools"]["package-dir"]
    readme = (ROOT / "README.md").read_text()
    for package, folder in mapping.items():
        docstring = (ROOT / folder / "__init__.py").read_text().split('"""')[1]
        assert f"``{folder}/``" in docstring and f"``{package}``" in docstring, folder
        assert f"| `{folder}/` | `{package}` |" in readme, folder
