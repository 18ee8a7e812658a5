"""RayService health: ready replicas come from running Serve replicas on ready Ray workers."""

from __future__ import annotations

from typing import Any

from wattserve.reconcile.health import rayservice_health


def _rs(serve: str = "HEALTHY", ready: str = "True") -> dict[str, Any]:
    return {"status": {
        "conditions": [{"type": "Ready", "status": ready, "reason": "RayServiceReady"}],
        "activeServiceStatus": {"applicationStatuses": {"wattserve": {
            "status": "RUNNING",
            "serveDeploymentStatuses": {"wattserve": {"status": serve}}}}}}}


def _pod(node_type: str, ready: bool = True) -> dict[str, Any]:
    return {"metadata": {"name": f"p-{node_type}", "labels": {"ray.io/node-type": node_type}},
            "status": {"conditions": [{"type": "Ready", "status": str(ready)}]}}


def test_all_replicas_running_on_ready_workers_is_ready() -> None:
    health = rayservice_health(_rs(), 2, [_pod("head"), _pod("worker"), _pod("worker")])
    assert health.ready and health.ready_replicas == 2


def test_replicas_pending_for_a_worker_are_not_reported_ready() -> None:
    """After a scale-up to 3 the RayService stays Ready (it serves), but one replica waits
    for the autoscaler's new worker: 2 ready, not all."""
    pods = [_pod("head"), _pod("worker"), _pod("worker"), _pod("worker", ready=False)]
    health = rayservice_health(_rs(serve="UPSCALING"), 3, pods)
    assert not health.ready and health.ready_replicas == 2
    assert "2/3 replicas ready" in health.message


def test_healthy_serve_without_enough_ready_workers_is_not_ready() -> None:
    health = rayservice_health(_rs(), 3, [_pod("head"), _pod("worker")])
    assert not health.ready and health.ready_replicas == 1


def test_head_pod_is_not_a_replica() -> None:
    health = rayservice_health(_rs(), 1, [_pod("head")])
    assert not health.ready and health.ready_replicas == 0


def test_not_ready_rayservice_has_no_ready_replicas() -> None:
    health = rayservice_health(_rs(ready="False"), 1, [_pod("worker")])
    assert not health.ready and health.ready_replicas == 0
