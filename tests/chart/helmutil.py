"""Helpers for the chart tests: find helm, render charts/wattserve, parse the manifests.

helm is located via ``$WATTSERVE_HELM``, else ``$WATTSERVE_CACHE/bin/helm-*/helm`` (default
cache ``~/.cache/wattserve``; the dev-cluster build puts it there: ``wattserve dev-cluster
build --only helm``). If it is missing the tests fail with that message, unless
``WATTSERVE_TEST_HELM=skip``.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from wattserve.api.manifests import KubectlLoader

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART = REPO_ROOT / "charts" / "wattserve"
RELEASE = "ws"
NAMESPACE = "wattserve-system"
# API versions helm template pretends the cluster serves (beyond the built-in ones): the
# Prometheus Operator's, so that the monitors render as on a cluster that has its CRDs. Pass
# api_versions=() to render as for a cluster without them.
API_VERSIONS = ("monitoring.coreos.com/v1",)


def _version_key(path: Path) -> tuple[int, ...]:
    m = re.search(r"helm-v?(\d+)\.(\d+)\.(\d+)", str(path))
    return tuple(int(x) for x in m.groups()) if m else (0, 0, 0)


@functools.cache
def helm_path() -> Path | None:
    env = os.environ.get("WATTSERVE_HELM")
    if env:
        p = Path(env).expanduser()
        return p if os.access(p, os.X_OK) else None
    cache = Path(os.environ.get("WATTSERVE_CACHE") or Path.home() / ".cache" / "wattserve")
    found = [p for p in cache.expanduser().glob("bin/helm-*/helm") if os.access(p, os.X_OK)]
    return max(found, key=_version_key) if found else None


def helm() -> Path:
    """The helm binary, or fail (skip with WATTSERVE_TEST_HELM=skip) with how to get it."""
    path = helm_path()
    if path is not None:
        return path
    why = (
        "helm not found: set WATTSERVE_HELM=/path/to/helm or build it with "
        "`wattserve dev-cluster build --only helm` (looked in "
        "$WATTSERVE_CACHE/bin/helm-*/helm, default ~/.cache/wattserve/bin/helm-*/helm)"
    )
    if os.environ.get("WATTSERVE_HELM"):
        why = f"WATTSERVE_HELM={os.environ['WATTSERVE_HELM']} is not an executable file"
    if os.environ.get("WATTSERVE_TEST_HELM", "").lower() == "skip":
        pytest.skip(f"WATTSERVE_TEST_HELM=skip; {why}")
    pytest.fail(why, pytrace=False)


def run_helm(*args: str, chart: Path = CHART) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    # Never touch a real cluster or the user's helm config.
    env["KUBECONFIG"] = os.devnull
    env.setdefault("HELM_CACHE_HOME", "/tmp/wattserve-chart-tests/helm-cache")
    env.setdefault("HELM_CONFIG_HOME", "/tmp/wattserve-chart-tests/helm-config")
    env.setdefault("HELM_DATA_HOME", "/tmp/wattserve-chart-tests/helm-data")
    return subprocess.run(
        [str(helm()), *args], cwd=chart.parent, capture_output=True, text=True, timeout=120,
        env=env,
    )


@functools.cache
def _render_cached(values_yaml: str, files: tuple[str, ...], chart: str,
                   release: str = RELEASE, namespace: str = NAMESPACE,
                   api_versions: tuple[str, ...] = API_VERSIONS) -> str:
    args = ["template", release, chart, "--namespace", namespace, "--include-crds"]
    for v in api_versions:
        args += ["--api-versions", v]
    for f in files:
        args += ["-f", f]
    tmp = None
    if values_yaml:
        tmp_dir = Path("/tmp/wattserve-chart-tests")
        tmp_dir.mkdir(parents=True, exist_ok=True)
        tmp = tmp_dir / f"values-{os.getpid()}-{abs(hash(values_yaml))}.yaml"
        tmp.write_text(values_yaml)
        args += ["-f", str(tmp)]
    try:
        res = run_helm(*args, chart=Path(chart))
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
    if res.returncode != 0:
        raise RenderError(res.stderr.strip() or res.stdout.strip())
    return res.stdout


# Every optional part of the chart on, so every template renders.
EVERYTHING_ON: dict[str, Any] = {
    "activator": {"enabled": True},
    "networkPolicy": {"enabled": True},
    "serviceMonitor": {"enabled": True},
    "podMonitor": {"enabled": True},
    "dashboard": {"enabled": True},
    "serving": {"networkPolicy": {"enabled": True, "namespaces": ["team-a"]}},
}


class RenderError(Exception):
    """helm template failed; the message is helm's."""


def render_text(values: Mapping[str, Any] | None = None, files: Iterable[Path] = (),
                chart: Path = CHART, release: str = RELEASE,
                namespace: str = NAMESPACE,
                api_versions: tuple[str, ...] = API_VERSIONS) -> str:
    values_yaml = yaml.safe_dump(dict(values), sort_keys=True) if values else ""
    return _render_cached(values_yaml, tuple(str(f) for f in files), str(chart), release,
                          namespace, api_versions)


def render(values: Mapping[str, Any] | None = None, files: Iterable[Path] = (),
           chart: Path = CHART, release: str = RELEASE, namespace: str = NAMESPACE,
           api_versions: tuple[str, ...] = API_VERSIONS) -> list[dict[str, Any]]:
    """Every manifest ``helm template`` renders (CRDs included), parsed; a duplicate key in
    any mapping fails (yaml.constructor.ConstructorError)."""
    text = render_text(values, files, chart, release, namespace, api_versions)
    return [d for d in yaml.load_all(text, Loader=KubectlLoader) if d]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d.get("kind") == kind]


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = by_kind(docs, kind)
    assert len(found) == 1, f"expected exactly one {kind}, got {len(found)}"
    return found[0]
