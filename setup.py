"""The packages to install: every package folder below the folders that pyproject.toml's
``[tool.setuptools] package-dir`` maps, under its import name. pyproject.toml states the
mapping (``plugins/`` is ``translator.plugins``...); this file only walks it, so a new
plugin folder with an ``__init__.py`` is installed without being listed anywhere."""

import tomllib
from pathlib import Path

from setuptools import find_packages, setup


def mapped_packages(root: Path = Path(".")) -> list[str]:
    with open(root / "pyproject.toml", "rb") as f:
        mapping: dict[str, str] = tomllib.load(f)["tool"]["setuptools"]["package-dir"]
    found = {f"{name}.{sub}" for name, folder in mapping.items()
             for sub in find_packages(str(root / folder))}
    return sorted(found | set(mapping))


if __name__ == "__main__":  # as setuptools runs it
    setup(packages=mapped_packages())
