"""The GPU image's requirement set resolves on PyPI (issue 12: it did not, FastAPI pin).

The image cannot be built here (no Docker engine), so pip resolves exactly what
serving/Dockerfile.gpu installs (serving/requirements-gpu.txt with
serving/constraints-gpu.txt) with ``--dry-run --ignore-installed``: metadata only, no wheel
is installed. Needs PyPI, like every setup step; bounded at RESOLVE_TIMEOUT_S.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SERVING = REPO / "serving"
REQUIREMENTS = SERVING / "requirements-gpu.txt"
CONSTRAINTS = SERVING / "constraints-gpu.txt"
RESOLVE_TIMEOUT_S = 600


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-\[\],]+)==([^\s#]+)", line)
        if match:
            pins[_norm(match[1].split("[")[0])] = match[2]
    return pins


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_dockerfile_installs_the_gpu_requirement_set_with_its_constraints() -> None:
    dockerfile = (SERVING / "Dockerfile.gpu").read_text()
    assert "-r /tmp/requirements-gpu.txt -c /tmp/constraints-gpu.txt" in dockerfile
    assert "constraints.txt" not in dockerfile.replace("constraints-gpu.txt", "")


def test_gpu_constraints_respect_vllms_fastapi_range() -> None:
    """vllm 0.29.0 requires fastapi[standard]>=0.133.0,<0.137.0 (its METADATA)."""
    fastapi = tuple(int(x) for x in _pins(CONSTRAINTS)["fastapi"].split("."))
    assert (0, 133, 0) <= fastapi < (0, 137, 0)
    assert _pins(CONSTRAINTS)["vllm"] == "0.29.0"


def test_gpu_requirement_set_resolves(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    cmd = [sys.executable, "-m", "pip", "--disable-pip-version-check", "install", "--dry-run",
           "--ignore-installed", "--quiet", "--report", str(report),
           "-r", str(REQUIREMENTS), "-c", str(CONSTRAINTS)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=RESOLVE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"pip did not resolve the GPU set within {RESOLVE_TIMEOUT_S}s",
                    pytrace=False)
    errors = "\n".join(line for line in proc.stderr.splitlines()
                       if not line.startswith("ERROR: Ignored"))
    assert proc.returncode == 0, errors[-3000:]
    resolved = {_norm(item["metadata"]["name"]): item["metadata"]["version"]
                for item in json.loads(report.read_text())["install"]}
    for name, version in _pins(CONSTRAINTS).items():
        if name in resolved:
            assert resolved[name] == version, name
    for name in ("vllm", "ray", "torch", "fastapi", "nvidia-ml-py", "gguf"):
        assert name in resolved, name
