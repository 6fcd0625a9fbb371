"""Type-check the `translator` package with mypy, as installed: `python tools/typecheck.py`.

pyproject's `package-dir` maps the top-level folders `plugins/`, `exporters/` and `cli/` to
`translator.plugins`, `translator.exporters` and `translator.cli`. mypy finds modules by their
folders and cannot follow the editable install's import hook, so this script builds a tree of
symbolic links with the installed layout under `build/typecheck/`, runs mypy on it and on the
code that uses it (`tests/`, `benchmarks/`, `examples/`; settings in pyproject's `[tool.mypy]`),
and reports errors at the real file paths. Extra arguments go to mypy.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TREE = ROOT / "build" / "typecheck"


def package_dirs() -> dict[str, str]:
    """The import name of each source folder, from pyproject's `package-dir`."""
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["tool"]["setuptools"]["package-dir"]


def build_tree(mapping: dict[str, str]) -> dict[str, str]:
    """Link each folder into TREE at its import path; return link-tree prefix -> real prefix."""
    shutil.rmtree(TREE, ignore_errors=True)
    prefixes = {}
    for package, folder in sorted(mapping.items(), key=lambda item: item[0].count(".")):
        target = TREE.joinpath(*package.split("."))
        if "." in package:
            # A subpackage lives in its own top-level folder: link the whole folder.
            if target.exists():
                raise SystemExit(f"Error: {package} ({folder}/) clashes with {target} in the link tree")
            target.symlink_to(os.path.relpath(ROOT / folder, target.parent), target_is_directory=True)
        else:
            # A top-level package gets a real folder of links, so subpackages can join it.
            target.mkdir(parents=True)
            for entry in (ROOT / folder).iterdir():
                if entry.name != "__pycache__":
                    (target / entry.name).symlink_to(os.path.relpath(entry, target))
        prefixes[f"{target.relative_to(ROOT).as_posix()}/"] = f"{folder}/"
    return prefixes


def real_paths(line: str, prefixes: dict[str, str]) -> str:
    """Rewrite a mypy message's link-tree path to the file in the checkout."""
    for tree_prefix in sorted(prefixes, key=len, reverse=True):
        if line.startswith(tree_prefix):
            return prefixes[tree_prefix] + line[len(tree_prefix) :]
    return line


#: Code that uses the package or builds it without being part of it; checked file by file.
USERS = ("tests", "benchmarks", "examples", "tools")


def user_files() -> list[str]:
    """The Python files git keeps under USERS (not build output an example's install left)."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "--",
                             "setup.py", *(f"{folder}/*.py" for folder in USERS)],
                            cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return sorted(path for path in listed.splitlines() if "/build/" not in path)


def main() -> int:
    mapping = package_dirs()
    prefixes = build_tree(mapping)
    roots = sorted({package.split(".")[0] for package in mapping})
    # The package as folders of the link tree (mypy takes packages or files, not both).
    command = [sys.executable, "-m", "mypy", *(str((TREE / root).relative_to(ROOT)) for root in roots),
               *user_files(), *sys.argv[1:]]
    env = {**os.environ, "MYPYPATH": str(TREE.relative_to(ROOT))}
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    for line in result.stdout.splitlines():
        print(real_paths(line, prefixes))
    sys.stderr.write(result.stderr)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
