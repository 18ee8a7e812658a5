"""``mypy --strict`` covers the same packages everywhere: pyproject.toml and the Makefile's
lint target list the same ones, and every package of the two source trees is in the list."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def pyproject_packages() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return list(config["tool"]["mypy"]["packages"])


def makefile_packages() -> list[str]:
    lint = re.search(r"^lint:.*\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text(), re.M)
    assert lint is not None
    return re.findall(r"-p (\S+)", lint.group(1))


def test_pyproject_and_makefile_check_the_same_packages() -> None:
    assert makefile_packages() == pyproject_packages()


def test_every_python_package_is_type_checked() -> None:
    listed = set(pyproject_packages())
    operator = (ROOT / "operator/wattserve").glob("*/__init__.py")
    found = {f"wattserve.{p.parent.name}" for p in operator}
    found |= {p.parent.name for p in (ROOT / "serving").glob("*/__init__.py")}
    assert found - listed == set()
