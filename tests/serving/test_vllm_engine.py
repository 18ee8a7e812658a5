"""The vLLM adapter: import behaviour here, everything else against the real vllm package.

vllm 0.29.0 pins FastAPI < 0.137 (the CPU serving set has 0.165), so the real package
lives in its own venv with the GPU image's requirement set ($WATTSERVE_CACHE/venv-gpu, built
by scripts/setup.d/60-upstream.sh). tests/serving/vllm_real.py runs there, with fakes
built by create_autospec from vLLM's classes; this test runs it and fails (not skips) when
the venv is missing.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from wattserve_serving.config import ServeConfig
from wattserve_serving.engines import make_engine
from wattserve_serving.engines.vllm import VLLMEngine

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("WATTSERVE_CACHE") or Path.home() / ".cache" / "wattserve")
GPU_VENV_PYTHON = CACHE / "venv-gpu" / "bin" / "python"
REAL_CASES = Path(__file__).resolve().parent / "vllm_real.py"
EMBED_CASES = Path(__file__).resolve().parent / "vllm_embed_real.py"  # --task embedding


def test_make_engine_does_not_import_vllm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "vllm", None)  # import would fail
    engine = make_engine(ServeConfig(model="org/m", engine="vllm", gpu_count=2))
    assert isinstance(engine, VLLMEngine)
    assert engine.tensor_parallel_size == 2
    with pytest.raises(Exception, match="wattserve\\[gpu\\]"):
        asyncio.run(engine.load())


@pytest.mark.parametrize("cases", [REAL_CASES, EMBED_CASES], ids=lambda p: p.stem)
def test_vllm_engine_against_the_real_vllm_package(cases: Path) -> None:
    if not GPU_VENV_PYTHON.exists():
        pytest.fail(f"no GPU requirement venv at {GPU_VENV_PYTHON}: run "
                    "scripts/setup.sh 60 (installs vllm 0.29.0 for these tests)", pytrace=False)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "operator"), str(REPO / "serving"),
                                         str(REPO / "tests" / "serving")])
    proc = subprocess.run(
        [str(GPU_VENV_PYTHON), "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "--noconftest", "--rootdir", str(cases.parent), str(cases)],
        capture_output=True, text=True, timeout=600, env=env, cwd=cases.parent)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert " passed" in proc.stdout and "failed" not in proc.stdout
