"""The serving package installs without the operator: its wheel (serving/pyproject.toml)
holds the serving code and wattserve.contract, nothing else of wattserve, and requires
neither kopf nor cryptography. Building it needs hatchling from PyPI (a package registry)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_serving_wheel_holds_serving_code_and_the_contract_only(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                           "--disable-pip-version-check", "-w", str(tmp_path),
                           str(ROOT / "serving")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = tmp_path.glob("wattserve_serving-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/", 1)[0] for n in names if not n.split("/", 1)[0].endswith(".dist-info")}
    assert tops == {"wattserve", "wattserve_serving", "wattserve_activator"}
    assert sorted(n for n in names if n.startswith("wattserve/")) == [
        "wattserve/__init__.py", "wattserve/contract.py"]
    assert "wattserve_serving/engines/llamacpp.py" in names
    meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
    requires = [line.split(":", 1)[1].strip().lower()
                for line in zipfile.ZipFile(wheel).read(meta).decode().splitlines()
                if line.startswith("Requires-Dist:")]
    assert requires and not [r for r in requires if r.startswith(("kopf", "cryptography",
                                                                   "kubernetes", "pyyaml"))]
