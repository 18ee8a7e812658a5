"""Kubernetes Events about ModelDeployments (core/v1 Events, created by the operator)."""

from __future__ import annotations

import datetime
import logging
from collections.abc import Mapping
from typing import Any

from wattserve import contract
from wattserve.controller.kubeapi import ApiError, KubeApi
from wattserve.reconcile.decide import Event

logger = logging.getLogger(__name__)
COMPONENT = "wattserve-operator"


def event_body(md: Mapping[str, Any], event: Event, instance: str, now: str) -> dict[str, Any]:
    meta = md.get("metadata") or {}
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta.get('name')}.", "namespace": meta.get("namespace")},
        "involvedObject": {
            "apiVersion": md.get("apiVersion", contract.API_VERSION),
            "kind": md.get("kind", "ModelDeployment"),
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
        },
        "type": event.type,
        "reason": str(event.reason),
        "message": event.message[:1024],
        "source": {"component": COMPONENT},
        "reportingComponent": "wattserve.dev/operator",
        "reportingInstance": instance[:128],
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }


def utcnow() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def post(api: KubeApi, md: Mapping[str, Any], event: Event, instance: str) -> None:
    """Best effort: an Event that cannot be posted is logged, never fails a reconcile."""
    namespace = str((md.get("metadata") or {}).get("namespace") or "default")
    try:
        await api.create("v1", "Event", namespace, event_body(md, event, instance, utcnow()))
    except ApiError as err:
        logger.warning("could not post event %s on %s: %s", event.reason, namespace, err)
