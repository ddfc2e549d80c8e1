"""Packaging: every package folder is listed in pyproject.toml, so a non-editable install ships all of it."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAPPING = {"assistant": "assistant", "assistant_plugins": "plugins", "assistant_profiles": "profiles"}


def test_every_package_folder_is_listed():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert config["package-dir"] == MAPPING
    listed = set(config["packages"])
    found = set()
    for package, folder in MAPPING.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder)
            found.add(".".join([package, *relative.parts]))
    assert found == listed


def test_profiles_and_stylesheets_are_package_data():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "*.toml" in config["package-data"]["assistant_profiles"]
    for tcss in (ROOT / "assistant").rglob("*.tcss"):
        relative = tcss.parent.relative_to(ROOT / "assistant")
        assert f"{'/'.join(relative.parts)}/*.tcss" in config["package-data"]["assistant"]
