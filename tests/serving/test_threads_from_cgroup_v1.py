"""On a cgroup v1 host (the dev machine's real node) llama.cpp threads come from the
container's CFS quota, as they do from cpu.max on cgroup v2."""

from __future__ import annotations

from pathlib import Path

from wattserve import contract
from wattserve_serving.config import cgroup_v1_cpu_limit, default_threads, pod_cpus


def _v1(tmp_path: Path, quota: int, period: int = 100000) -> Path:
    d = tmp_path / "cpu"
    d.mkdir()
    (d / "cpu.cfs_quota_us").write_text(f"{quota}\n")
    (d / "cpu.cfs_period_us").write_text(f"{period}\n")
    return d


def test_cfs_quota_gives_the_thread_count(tmp_path: Path) -> None:
    v1 = _v1(tmp_path, 100000)
    assert cgroup_v1_cpu_limit(v1) == 1.0
    missing_v2 = tmp_path / "cpu.max"
    assert default_threads({contract.ENV_THREADS: "4"}, missing_v2, v1) == 1
    assert pod_cpus({}, missing_v2, v1) == 1.0


def test_no_quota_falls_back_to_the_env(tmp_path: Path) -> None:
    v1 = _v1(tmp_path, -1)
    assert cgroup_v1_cpu_limit(v1) is None
    assert default_threads({contract.ENV_THREADS: "3"}, tmp_path / "cpu.max", v1) == 3


def test_v2_wins_over_v1(tmp_path: Path) -> None:
    v2 = tmp_path / "cpu.max"
    v2.write_text("200000 100000\n")
    assert default_threads({}, v2, _v1(tmp_path, 100000)) == 2
