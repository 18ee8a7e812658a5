"""Fleet placement on the dev cluster: twelve copies of SmolLM2 on a CPU pool that holds six.

The test makes its own kwok nodes and ServingPools (a CPU pool of 3 × 16 vCPU nodes whose
``maxNodes`` is 10, so only counted nodes can stop it, and a 2 × 4-GPU pool), priced far
below the example pools so the fleet lands on them whatever else the cluster holds. kwok
nodes are simulated (pods are scheduled by the real scheduler, then marked running):
this checks placement and scheduling, not serving.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubeutil import Cluster, WaitTimeout, unique_name, wait_for
from test_operator_support import (  # noqa: F401  (fixtures are used by name)
    Operator,
    condition,
    events_for,
    get_md,
    md_manifest,
    pods_of,
    wait_condition,
    wattserve_api_fixture,
)
from wattserve.devcluster.nodepools import Pool, node_manifest

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
COPIES = 12


def _serving_pool(name: str, source: str, price: str, max_nodes: int) -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all((REPO / "examples" / "pools.yaml").read_text()) if d]
    pool = copy.deepcopy(next(d for d in docs if d["metadata"]["name"] == source))
    pool["metadata"] = {"name": name}
    pool["spec"]["nodeSelector"] = {"wattserve.dev/pool": name}
    for tol in pool["spec"]["tolerations"]:
        if tol.get("key") == "wattserve.dev/pool":
            tol["value"] = name
    pool["spec"]["pricing"]["usdPerNodeHour"] = price
    pool["spec"]["maxNodes"] = max_nodes
    return pool


@pytest.fixture(name="fleet_pools")
def fleet_pools_fixture(wattserve_api: Cluster) -> Iterator[tuple[str, str]]:
    cluster = wattserve_api
    suffix = unique_name("fl")[3:]
    cpu, gpu = f"fl-cpu-{suffix}", f"fl-gpu-{suffix}"
    pools = [Pool(cpu, 3, {"cpu": "16", "memory": "64Gi", "pods": "110"}),
             Pool(gpu, 2, {"cpu": "48", "memory": "192Gi", "pods": "110",
                           "nvidia.com/gpu": "4"}, gpu_count=4, gpu_product="NVIDIA-L4")]
    nodes = [node_manifest(pool, name) for pool in pools for name in pool.node_names()]
    for node in nodes:
        cluster.apply(node)
    names = [node["metadata"]["name"] for node in nodes]

    def ready() -> bool:
        items = cluster.get_json("nodes", *names)["items"]
        return len(items) == len(names) and all(
            any(c["type"] == "Ready" and c["status"] == "True"
                for c in n.get("status", {}).get("conditions") or ()) for n in items)

    wait_for(ready, timeout=60, what="the test's kwok nodes Ready")
    # $0.005/h per SmolLM2 on the CPU pool, $0.0075/h on the GPU pool: both far below
    # the example pools ($0.40/h on cpu-general), so the fleet stays on these pools.
    cluster.apply(_serving_pool(cpu, "cpu-general", "0.01", max_nodes=10))
    cluster.apply(_serving_pool(gpu, "gpu-l4", "0.03", max_nodes=2))
    try:
        yield cpu, gpu
    finally:
        cluster.kubectl("delete", "servingpool", cpu, gpu, "--ignore-not-found")
        for node in nodes:
            cluster.kubectl("delete", "node", node["metadata"]["name"], "--ignore-not-found")


@pytest.fixture(name="fleet_operator")
def fleet_operator_fixture(fleet_pools: tuple[str, str], wattserve_api: Cluster,
                           namespace: str, tmp_path: Path) -> Iterator[Operator]:
    """Started after the pools' nodes exist; a short dwell so a move back is seen."""
    op = Operator(wattserve_api, namespace, tmp_path,
                  extra=("--rebalance-dwell-seconds", "5"))
    op.start()
    try:
        yield op
    finally:
        op.stop()


def _names() -> list[str]:
    return [f"smol-{i:02d}" for i in range(COPIES)]


def _settled(cluster: Cluster, namespace: str) -> dict[str, dict[str, Any]] | None:
    """Every copy Placed=True and Ready=True, or Placed=False PoolsFull."""
    out = {}
    for name in _names():
        md = get_md(cluster, namespace, name)
        placed, ready = condition(md, "Placed"), condition(md, "Ready")
        ok = (placed.get("status") == "True" and ready.get("status") == "True") or (
            placed.get("status") == "False" and placed.get("reason") == "PoolsFull")
        if not ok:
            return None
        out[name] = md
    return out


def _where_each_stands(cluster: Cluster, namespace: str) -> str:
    """One line per copy: its Placed and Ready conditions, its pods' phases and Ready
    conditions, and its Deployment's ready counts (stale operator status, or pods that
    never turned Ready?)."""
    lines = []
    for name in _names():
        try:
            md = get_md(cluster, namespace, name)
            pods = [(p["status"].get("phase", "?"), _pod_ready(p))
                    for p in pods_of(cluster, namespace, name)]
            dep = cluster.get_json("deployment", name, "-n", namespace).get("status") or {}
        except Exception as exc:  # a diagnostic must not hide the failure
            lines.append(f"  {name}: {exc}")
            continue
        cond = {t: condition(md, t) for t in ("Placed", "Ready")}
        lines.append(f"  {name}: " + ", ".join(
            f"{t}={c.get('status', '-')}/{c.get('reason', '-')}" for t, c in cond.items())
            + f", pool {(md.get('status') or {}).get('placement', {}).get('pool')}, pods "
            f"(phase, Ready) {pods}, Deployment ready/available "
            f"{dep.get('readyReplicas')}/{dep.get('availableReplicas')} of {dep.get('replicas')}")
    return "\n".join(lines)


def _pod_ready(pod: dict[str, Any]) -> str:
    return next((c.get("status", "?") for c in pod.get("status", {}).get("conditions") or ()
                 if c.get("type") == "Ready"), "-")


def _unschedulable(cluster: Cluster, namespace: str) -> list[str]:
    pods = cluster.get_json("pods", "-n", namespace)["items"]
    return [p["metadata"]["name"] for p in pods
            if any(c.get("type") == "PodScheduled" and c.get("status") == "False"
                   for c in p.get("status", {}).get("conditions") or ())]


def test_twelve_copies_fill_the_counted_pool_spill_the_rest_and_move_back(
        fleet_pools: tuple[str, str], fleet_operator: Operator, namespace: str) -> None:
    cluster = fleet_operator.cluster
    cpu, gpu = fleet_pools
    docs = [md_manifest(name, namespace) for name in _names()]
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs))

    try:
        mds = wait_for(lambda: _settled(cluster, namespace), timeout=240,
                       what="all twelve placed and Ready, or PoolsFull")
    except WaitTimeout as err:  # say which copies were not settled, and what the operator did
        raise AssertionError(f"{err}\n{_where_each_stands(cluster, namespace)}\n"
                             f"operator log (tail):\n{fleet_operator.log()[-3000:]}") from None
    where = {name: md["status"]["placement"].get("pool") for name, md in mds.items()}
    on_cpu = sorted(name for name, pool in where.items() if pool == cpu)
    # 3 counted nodes × 16 vCPU hold 12 replicas of 4 vCPU = 6 models of 2 (maxNodes is 10)
    assert len(on_cpu) == 6, where
    assert not _unschedulable(cluster, namespace)
    for name, md in mds.items():
        if where[name] == cpu:
            continue
        placed = condition(md, "Placed")
        if placed["status"] == "True":  # spilled, and says why
            assert md["status"]["placement"]["spilledFrom"] == cpu
            assert f"{cpu} full: 48/48 vCPU committed" in placed["message"], placed
        else:  # nothing had room: a Warning Event
            assert any(e["reason"] == "PoolsFull" and e["type"] == "Warning"
                       for e in events_for(cluster, namespace, name))
    pods = [p for name in _names() for p in pods_of(cluster, namespace, name)]
    assert pods and all(p["status"].get("phase") == "Running" for p in pods)

    # Two CPU models leave: two spilled ones move back once the dwell time (5 s) is over,
    # new pods Ready before the old ones go (the Deployment never drops to 0 ready).
    spilled = sorted(name for name, pool in where.items() if pool == gpu)
    assert len(spilled) >= 2
    cluster.kubectl("delete", "modeldeployment", *on_cpu[:2], "-n", namespace, "--wait=false")
    movers: list[str] = []
    lowest_ready: dict[str, int] = {}
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(movers) < 2:
        movers = [n for n in spilled
                  if get_md(cluster, namespace, n)["status"]["placement"].get("pool") == cpu]
        for name in spilled:
            dep = cluster.get_json("deployment", name, "-n", namespace)
            ready = int(dep.get("status", {}).get("readyReplicas") or 0)
            lowest_ready[name] = min(lowest_ready.get(name, ready), ready)
        time.sleep(0.5)
    assert len(movers) == 2, f"expected two models back on {cpu}, got {movers}"
    for name in movers:
        md = wait_condition(cluster, namespace, name, "Ready", "True", timeout=120)
        assert "spilledFrom" not in md["status"]["placement"]
        assert lowest_ready[name] >= 1, f"{name} had no ready replica during its move"
    wait_for(lambda: all(p["spec"].get("nodeSelector", {}).get("wattserve.dev/pool") == cpu
                         for n in movers for p in pods_of(cluster, namespace, n)),
             timeout=120, what="the movers' old pods drained")
    assert not _unschedulable(cluster, namespace)
    remaining = [n for n in spilled if n not in movers]
    assert all(get_md(cluster, namespace, n)["status"]["placement"]["pool"] == gpu
               for n in remaining)  # the pool is full again: the others stay
