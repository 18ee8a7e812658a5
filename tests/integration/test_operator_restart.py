"""Operator killed mid-reconcile and restarted: converges, no duplicate children."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest
import yaml
from kubeutil import Cluster, wait_for
from test_operator_support import (  # noqa: F401  (fixtures are used by name)
    Operator,
    condition,
    md_manifest,
    wattserve_api_fixture,
)

pytestmark = pytest.mark.integration
COUNT = 20


def _all_placed_with_children(cluster: Cluster, ns: str) -> bool:
    mds = cluster.get_json("modeldeployments", "-n", ns)["items"]
    deps = cluster.get_json("deployments", "-n", ns)["items"]
    placed = [m for m in mds if condition(m, "Placed").get("status") == "True"]
    return len(placed) == COUNT and len(deps) == COUNT


def test_restart_mid_reconcile_converges_without_duplicate_children(
        wattserve_api: Cluster, namespace: str, tmp_path: Path) -> None:
    cluster = wattserve_api
    manifests = [md_manifest(f"m{i:02d}", namespace) for i in range(COUNT)]
    cluster.kubectl("apply", "-f", "-", input="\n---\n".join(
        yaml.safe_dump(m) for m in manifests))
    op = Operator(cluster, namespace, tmp_path)
    op.start(wait=False)
    try:
        wait_for(lambda: cluster.get_json("deployments", "-n", namespace)["items"],
                 timeout=60, what="the first children")
        op.kill()  # SIGKILL: some children written, some status not yet
        created_before = len(cluster.get_json("deployments", "-n", namespace)["items"])
        op.start()
        wait_for(lambda: _all_placed_with_children(cluster, namespace), timeout=120,
                 what=f"{COUNT} ModelDeployments placed with children")
        time.sleep(6)  # a resync period later nothing has been re-created
        deps = cluster.get_json("deployments", "-n", namespace)["items"]
        svcs = cluster.get_json("services", "-n", namespace)["items"]
        assert sorted(d["metadata"]["name"] for d in deps) == sorted(
            m["metadata"]["name"] for m in manifests)
        assert len(svcs) == COUNT
        owners = Counter(r["metadata"]["ownerReferences"][0]["name"] for r in
                         cluster.get_json("replicasets", "-n", namespace)["items"])
        assert set(owners.values()) == {1}, f"re-rendered templates after restart: {owners}"
        assert 0 < created_before <= COUNT
    finally:
        op.stop()
