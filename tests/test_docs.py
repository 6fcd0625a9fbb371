"""Docs that must not drift from the code: the hook tables (the guide's, the registry's),
the folder-to-package map."""

from __future__ import annotations

import inspect
import re
import tomllib
from pathlib import Path

import pytest

from translator import hookspecs
from translator.registry import OTHER_HOOKS, REGISTRATION_HOOKS, RegistrationHook

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


def documented_spec_types() -> dict[str, str]:
    """``{hook: "ModelSpec"}`` from the guide's hook table: the type its row starts with."""
    table = GUIDE.read_text().split("## Hook reference", 1)[1]
    return dict(re.findall(r"^\| `(\w+)\([^)]*\)` \| `(\w+)\(", table, re.MULTILINE))


def hook_table_mismatches(declared: dict[str, str],
                          rows: tuple[RegistrationHook, ...] = REGISTRATION_HOOKS,
                          others: tuple[str, ...] = OTHER_HOOKS) -> list[str]:
    """What keeps the registry's hook table (``rows`` and ``others``) from matching the
    hookspecs ``declared`` (``{hook: its parameters}``); empty when they match."""
    tabled = [row.hook for row in rows] + list(others)
    problems = [f"hookspec {hook} has no row in the registry's table"
                for hook in declared if hook not in tabled]
    problems += [f"row {hook} has no hookspec" for hook in tabled if hook not in declared]
    problems += [f"row {hook} appears {tabled.count(hook)} times"
                 for hook in dict.fromkeys(tabled) if tabled.count(hook) > 1]
    problems += [f"{row.hook}({declared[row.hook]}) does not take just register"
                 for row in rows if declared.get(row.hook, "register") != "register"]
    return problems


def test_the_registrys_hook_table_matches_the_hookspecs():
    assert hook_table_mismatches(declared_hooks()) == []


@pytest.mark.parametrize(("declared", "rows", "others", "problem"), [
    ({**declared_hooks(), "register_widgets": "register"}, REGISTRATION_HOOKS, OTHER_HOOKS,
     "hookspec register_widgets has no row in the registry's table"),
    (declared_hooks(), (*REGISTRATION_HOOKS, RegistrationHook("register_widgets", object, "widget")),
     OTHER_HOOKS, "row register_widgets has no hookspec"),
    ({k: v for k, v in declared_hooks().items() if k != "register_commands"}, REGISTRATION_HOOKS,
     OTHER_HOOKS, "row register_commands has no hookspec"),
    (declared_hooks(), REGISTRATION_HOOKS, (*OTHER_HOOKS, "register_models"),
     "row register_models appears 2 times"),
    ({**declared_hooks(), "register_models": "cli"}, REGISTRATION_HOOKS, OTHER_HOOKS,
     "register_models(cli) does not take just register"),
])
def test_a_hook_table_out_of_step_with_the_hookspecs_is_caught(declared, rows, others, problem):
    assert problem in hook_table_mismatches(declared, rows, others)


def test_the_guide_names_the_spec_type_each_registration_hook_takes():
    expected = {row.hook: row.spec_type.__name__ for row in REGISTRATION_HOOKS}
    assert documented_spec_types() == expected


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
