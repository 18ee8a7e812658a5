"""`helm lint` passes, strictly, with the default and the example values."""

from __future__ import annotations

import pytest

from .helmutil import CHART, run_helm

CASES = {
    "defaults": [],
    "example-pools": ["-f", str(CHART / "examples" / "pools-values.yaml")],
    "everything-on": [
        "-f", str(CHART / "examples" / "pools-values.yaml"),
        "--set", "networkPolicy.enabled=true,serviceMonitor.enabled=true,"
                 "podMonitor.enabled=true,dashboard.enabled=true,"
                 "serviceMonitor.force=true,podMonitor.force=true,activator.enabled=true,"
                 "operator.replicas=1",
    ],
    "scoped-everything-on": [
        "--set", "operator.namespaces={team-a,team-b},activator.enabled=true,"
                 "serving.networkPolicy.enabled=true,networkPolicy.enabled=true,"
                 "dashboard.enabled=true,operator.replicas=1",
    ],
    "operator-off": ["--set", "operator.enabled=false"],
    "replicas-0": ["--set", "operator.replicas=0"],
}


@pytest.mark.parametrize("name", list(CASES))
def test_helm_lint(name: str) -> None:
    res = run_helm("lint", str(CHART), "--strict", *CASES[name])
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert "0 chart(s) failed" in out, out
    assert "[WARNING]" not in out and "[ERROR]" not in out, out


def test_helm_lint_rejects_bad_values() -> None:
    res = run_helm("lint", str(CHART), "--set", "energySource=magic")
    assert res.returncode != 0
    assert "/energySource" in res.stdout + res.stderr
