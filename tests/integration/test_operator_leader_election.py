"""Several operator replicas on a real API server: one holds the Lease and acts, the others
write nothing; a clean stop hands the Lease over at once, a crash after it expires.

Real operator processes (`python -m wattserve.controller --leader-election-lease NS/NAME`),
a real coordination.k8s.io Lease, real ModelDeployments placed with their children.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

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
LEASE_S = 4  # retry every 0.53 s, renew deadline 2.7 s


def _metric(op: Operator, name: str, labels: str = "") -> float:
    return op.metric(name, labels)


def _leading(op: Operator) -> bool:
    return op.healthy() and _metric(op, "wattserve_operator_leader") == 1.0


def _writes(op: Operator) -> float:
    return sum(_metric(op, "wattserve_operator_api_requests_total", f'{{verb="{verb}"}}')
               for verb in ("apply", "patch", "create", "delete"))


def _lease(cluster: Cluster, ns: str) -> dict[str, Any]:
    out = cluster.kubectl("get", "lease", "wattserve-leader", "-n", ns, "-o", "json")
    spec: dict[str, Any] = json.loads(out.stdout)["spec"]
    return spec


def _apply(cluster: Cluster, ns: str, *names: str) -> None:
    cluster.kubectl("apply", "-f", "-", input="\n---\n".join(
        yaml.safe_dump(md_manifest(n, ns)) for n in names))


def _placed_with_children(cluster: Cluster, ns: str, names: set[str]) -> bool:
    mds = cluster.get_json("modeldeployments", "-n", ns)["items"]
    placed = {m["metadata"]["name"] for m in mds
              if condition(m, "Placed").get("status") == "True"}
    deps = {d["metadata"]["name"] for d in cluster.get_json("deployments", "-n", ns)["items"]}
    return names <= placed and names <= deps


def _replica(cluster: Cluster, ns: str, tmp: Path, name: str, lease_s: int = LEASE_S,
             env: dict[str, str] | None = None) -> Operator:
    log_dir = tmp / name
    log_dir.mkdir()
    return Operator(cluster, ns, log_dir, env=env, extra=(
        "--leader-election-lease", f"{ns}/wattserve-leader",
        "--leader-election-lease-seconds", str(lease_s)))


def _took_over(new: Operator) -> float:
    started = time.monotonic()
    wait_for(lambda: _leading(new), timeout=4 * LEASE_S, interval=0.1,
             what="the follower to take the lease")
    return time.monotonic() - started


def test_one_replica_acts_and_a_follower_takes_over_on_stop_and_on_crash(
        wattserve_api: Cluster, namespace: str, tmp_path: Path) -> None:
    cluster, ns = wattserve_api, namespace
    a = _replica(cluster, ns, tmp_path, "a")
    b = _replica(cluster, ns, tmp_path, "b")
    c = _replica(cluster, ns, tmp_path, "c")
    try:
        a.start()
        wait_for(lambda: _leading(a), timeout=20, what="the first replica to lead")
        b.start()
        c.start()
        _apply(cluster, ns, "m1", "m2", "m3")
        wait_for(lambda: _placed_with_children(cluster, ns, {"m1", "m2", "m3"}), timeout=60,
                 what="three ModelDeployments placed by the leader")
        time.sleep(2 * LEASE_S)  # followers renew nothing and write nothing
        assert [_leading(op) for op in (a, b, c)] == [True, False, False]
        assert _writes(a) > 0 and _writes(b) == 0 and _writes(c) == 0
        lease = _lease(cluster, ns)
        assert lease["leaseDurationSeconds"] == LEASE_S and lease["leaseTransitions"] == 0

        # A clean stop (SIGTERM, as in a rolling update) releases the Lease.
        stopped = time.monotonic()
        assert a.proc is not None
        a.proc.send_signal(signal.SIGTERM)
        new = wait_for(lambda: next((op for op in (b, c) if _leading(op)), None),
                       timeout=4 * LEASE_S, interval=0.1, what="a follower to lead")
        after_stop = time.monotonic() - stopped
        a.proc.wait(timeout=15)
        exited = time.monotonic() - stopped
        other = c if new is b else b
        _apply(cluster, ns, "m4")
        wait_for(lambda: _placed_with_children(cluster, ns, {"m4"}), timeout=60,
                 what="a new ModelDeployment placed by the new leader")
        assert not _leading(other) and _writes(other) == 0
        # released: taken within a retry period or two, not after the lease ran out
        assert after_stop < LEASE_S - 1, (
            f"the lease was taken {after_stop:.1f}s after SIGTERM: as late as an expired one")
        assert exited < 5, f"the leader took {exited:.1f}s to exit after SIGTERM"

        # A crash (SIGKILL) releases nothing: the follower waits out the lease.
        crashed = time.monotonic()
        new.kill()
        _took_over(other)
        after_crash = time.monotonic() - crashed
        # Not before the lease ran out: at most one renewal period passed between the last
        # renewal the follower saw and the crash.
        assert LEASE_S - LEASE_S / 7.5 - 0.1 <= after_crash <= LEASE_S + 3.0, after_crash
        _apply(cluster, ns, "m5")
        wait_for(lambda: _placed_with_children(cluster, ns, {"m5"}), timeout=60,
                 what="a new ModelDeployment placed after the crash")
        assert _lease(cluster, ns)["leaseTransitions"] == 2
        deps = cluster.get_json("deployments", "-n", ns)["items"]
        assert sorted(d["metadata"]["name"] for d in deps) == ["m1", "m2", "m3", "m4", "m5"]
        print(f"\nleader election: takeover {after_stop:.2f}s after SIGTERM (the old "
              f"leader exited after {exited:.2f}s), "
              f"{after_crash:.2f}s after a crash (lease {LEASE_S}s)")
    finally:
        for op in (a, b, c):
            op.stop()


def test_a_restarted_container_takes_its_own_pods_lease_without_waiting_it_out(
        wattserve_api: Cluster, namespace: str, tmp_path: Path) -> None:
    """The same pod name (the downward API's) before and after a crash, as when the kubelet
    restarts the operator container: the new process leads before the old lease runs out."""
    cluster, ns, lease_s = wattserve_api, namespace, 12
    op = _replica(cluster, ns, tmp_path, "pod", lease_s,
                  env={"WATTSERVE_OPERATOR_POD_NAME": "wattserve-operator-7d9f-x2x4q"})
    try:
        op.start()
        wait_for(lambda: _leading(op), timeout=20, what="the replica to lead")
        first = _lease(cluster, ns)["holderIdentity"]
        op.kill()
        crashed = time.monotonic()
        op.start()
        wait_for(lambda: _leading(op), timeout=3 * lease_s, interval=0.1,
                 what="the restarted replica to lead")
        after_restart = time.monotonic() - crashed
        lease = _lease(cluster, ns)
        assert lease["holderIdentity"] != first  # a new process, a new identity
        assert lease["holderIdentity"].startswith("wattserve@wattserve-operator-7d9f-x2x4q/")
        # Waiting out the old lease would take at least lease_s after the new process first
        # read it, and that is after the crash.
        assert after_restart < lease_s, after_restart
        _apply(cluster, ns, "r1")
        wait_for(lambda: _placed_with_children(cluster, ns, {"r1"}), timeout=60,
                 what="a ModelDeployment placed by the restarted replica")
        print(f"\nleader election: a restarted container led {after_restart:.2f}s after the "
              f"crash (lease {lease_s}s, process start included)")
    finally:
        op.stop()
