"""ServingPool changes re-plan the affected ModelDeployments; the autoscaler seam."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import pytest
import yaml
from kubeutil import unique_name, wait_for
from test_operator_support import (  # noqa: F401  (fixtures are used by name)
    Operator,
    condition,
    get_md,
    md_manifest,
    operator_fixture,
    wait_condition,
    wattserve_api_fixture,
)

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
NAME = "pinned"


def _pool(name: str, price: str = "0.8064") -> dict:
    docs = [d for d in yaml.safe_load_all((REPO / "examples" / "pools.yaml").read_text()) if d]
    pool = copy.deepcopy(next(d for d in docs if d["metadata"]["name"] == "cpu-general"))
    pool["metadata"] = {"name": name}
    pool["spec"]["pricing"]["usdPerNodeHour"] = price
    return pool


def test_pool_create_update_delete_re_plans_the_pinned_model_deployment(
        operator: Operator, namespace: str) -> None:
    cluster = operator.cluster
    pool = unique_name("wst-pool")
    cluster.apply(md_manifest(NAME, namespace, placement={"pool": pool}))
    wait_condition(cluster, namespace, NAME, "Placed", "False", "PinnedPoolNotFound")
    try:
        cluster.apply(_pool(pool))
        md = wait_condition(cluster, namespace, NAME, "Placed", "True", timeout=30)
        assert md["status"]["placement"]["pool"] == pool
        before = md["status"]["placement"]["usdPerHour"]
        wait_condition(cluster, namespace, NAME, "Ready", "True", timeout=90)

        cluster.apply(_pool(pool, price="1.6128"))  # twice the price
        wait_for(lambda: get_md(cluster, namespace, NAME)["status"]["placement"][
            "usdPerHour"] != before, timeout=30, what="re-plan after the pool update")
    finally:
        cluster.kubectl("delete", "servingpool", pool, "--ignore-not-found")
    md = wait_condition(cluster, namespace, NAME, "Placed", "False", "PinnedPoolNotFound",
                        timeout=30)
    degraded = condition(md, "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "PlacementLost")
    # the workload keeps running on its last placement
    assert cluster.get_json("deployment", NAME, "-n", namespace)["spec"]["replicas"] >= 1


def test_pool_status_books_the_models_placed_there_until_they_are_deleted(
        operator: Operator, namespace: str) -> None:
    cluster = operator.cluster
    pool = unique_name("wst-pool")
    cluster.apply(_pool(pool))
    try:
        cluster.apply(md_manifest("booked", namespace, placement={"pool": pool}))
        md = wait_condition(cluster, namespace, "booked", "Placed", "True", timeout=30)
        placement = md["status"]["placement"]

        def status() -> dict:
            return cluster.get_json("servingpool", pool).get("status") or {}

        wait_for(lambda: status().get("modelDeployments") == 1, timeout=30,
                 what="the pool's status counting the model placed there")
        st = status()
        generation = cluster.get_json("servingpool", pool)["metadata"]["generation"]
        assert st["observedGeneration"] == generation
        accepted = next(c for c in st["conditions"] if c["type"] == "Accepted")
        assert (accepted["status"], accepted["reason"]) == ("True", "Accepted")
        assert st["replicas"] == placement["replicas"]
        per_replica = placement["cpuRequestMillis"] / 1000
        assert float(st["committed"]["cpu"]) == pytest.approx(per_replica * st["replicas"])
        assert st["usage"].endswith("committed") and "vCPU" in st["usage"], st
        assert st["capacity"]["source"] in ("nodes", "maxNodes")
        table = cluster.kubectl("get", "servingpool", pool).stdout.splitlines()
        head = table[0].split()
        assert {"MODELS", "REPLICAS", "USAGE"} <= set(head), table
        assert st["usage"].split()[0] in table[1], table

        cluster.kubectl("delete", "modeldeployment", "booked", "-n", namespace)
        wait_for(lambda: status().get("modelDeployments") == 0, timeout=30,
                 what="the pool's status after the model was deleted")
        assert status()["replicas"] == 0
    finally:
        cluster.kubectl("delete", "servingpool", pool, "--ignore-not-found")


def test_replicas_written_by_the_autoscaler_are_rendered_and_never_reset(
        operator: Operator, namespace: str) -> None:
    cluster = operator.cluster
    cluster.apply(md_manifest("scaled", namespace))
    md = wait_condition(cluster, namespace, "scaled", "Ready", "True", timeout=90)
    assert md["status"]["replicas"]["desired"] == 2

    def set_desired(n: int) -> None:
        cluster.kubectl("patch", "modeldeployment", "scaled", "-n", namespace,
                        "--subresource=status", "--type=merge",
                        "-p", json.dumps({"status": {"replicas": {"desired": n}}}))

    def dep_replicas() -> int:
        return int(cluster.get_json("deployment", "scaled", "-n", namespace)["spec"]["replicas"])

    set_desired(3)
    wait_for(lambda: dep_replicas() == 3, timeout=30, what="Deployment scaled to 3")
    time.sleep(7)  # over a resync period (5 s): the reconcile must not reset it
    assert dep_replicas() == 3
    wait_condition(cluster, namespace, "scaled", "Ready", "True", timeout=60)
    set_desired(50)  # above maxReplicas 8: clamped
    wait_for(lambda: dep_replicas() == 8, timeout=30, what="clamped to maxReplicas")
