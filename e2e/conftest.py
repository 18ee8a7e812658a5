"""e2e fixtures: the whole wattserve stack on the session's cluster (../conftest.py).

``WATTSERVE_E2E_PROVIDER`` = ``local`` (default: the dev cluster with its real node; the
operator is the chart's pod and SmolLM2 is served by real pods, e2e/harness/realpods.py;
test_full_stack.py) or ``kind`` (e2e/kind/run.sh on the cluster e2e/kind/up.sh made:
test_kind_serving.py). Each provider collects only its own suite.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from kubeutil import Cluster

from e2e.harness.realpods import RealPodStack, prometheus_binary
from e2e.harness.stack import Kube

PROVIDER = os.environ.get("WATTSERVE_E2E_PROVIDER", "local")
collect_ignore = ["test_kind_serving.py"] if PROVIDER != "kind" else ["test_full_stack.py"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Remember the first failed step of a module: later steps build on it."""
    yield
    module = getattr(item, "module", None)
    first = not getattr(module, "_failed_step", None)
    if module is not None and call.excinfo is not None and call.when in ("setup", "call") \
            and first:
        module._failed_step = item.name


@pytest.fixture(autouse=True)
def _stop_after_a_failed_step(request: pytest.FixtureRequest) -> None:
    failed = getattr(request.module, "_failed_step", None)
    if failed and "/e2e/" in str(request.path):
        pytest.fail(f"not run: the earlier step {failed} failed", pytrace=False)


@pytest.fixture(scope="module")
def stack(kube_cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if PROVIDER != "local":
        pytest.fail(f"WATTSERVE_E2E_PROVIDER={PROVIDER!r}: expected local or kind", pytrace=False)
    assert kube_cluster.helm is not None, "helm binary missing: wattserve dev-cluster build"
    state_dir = kube_cluster.extra.get("state_dir")
    if kube_cluster.external or state_dir is None:
        pytest.fail("the local provider needs the session dev cluster (unset KUBECONFIG)",
                    pytrace=False)
    from wattserve.devcluster.state import ClusterState

    st = ClusterState.load(Path(state_dir))
    if st is None or not st.real_node:
        why = ("the e2e suite serves from real pods: the session dev cluster has no real "
               "node (WATTSERVE_TEST_REAL_NODE=0, or this machine cannot run one)")
        if os.environ.get("CI"):  # CI's machine runs one: its absence is a failure there
            pytest.fail(why, pytrace=False)
        pytest.skip(why)
    if not prometheus_binary().exists():
        pytest.fail(f"{prometheus_binary()} missing (Prometheus with Kubernetes discovery): "
                    "bash scripts/setup.sh 45", pytrace=False)
    workdir = tmp_path_factory.mktemp("e2e")
    rp = RealPodStack(kube=_kube_with_helm(kube_cluster), workdir=workdir,
                      namespace="e2e-models", state_dir=Path(state_dir))
    try:
        yield rp
    finally:
        rp.stop_all()
        for log in sorted(workdir.rglob("*.log")):
            sys.stderr.write(f"\n--- {log.name} (last 40 lines) ---\n")
            sys.stderr.write("\n".join(log.read_text(errors="replace").splitlines()[-40:]))


def _kube_with_helm(cluster: Cluster) -> Kube:
    """A Kube whose bin_dir has kubectl; helm is found through a symlink dir if apart."""
    kubectl_dir = cluster.kubectl_bin.parent
    if cluster.helm is None or cluster.helm.parent == kubectl_dir:
        return Kube(cluster.kubeconfig, kubectl_dir)
    merged = Path(os.environ.get("TMPDIR", "/tmp")) / f"wattserve-e2e-bin-{os.getpid()}"
    merged.mkdir(exist_ok=True)
    for exe in (cluster.kubectl_bin, cluster.helm):
        link = merged / exe.name
        if not link.exists():
            link.symlink_to(exe)
    return Kube(cluster.kubeconfig, merged)
