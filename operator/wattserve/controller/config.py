"""Operator settings: command line first, then WATTSERVE_* environment, then defaults."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

from wattserve.controller.activation import activator_service_from_env
from wattserve.controller.autoscaling import AutoscaleSettings
from wattserve.controller.autoscaling import settings_from_env as autoscale_from_env
from wattserve.reconcile.lease import (
    DEFAULT_DURATION_S,
    MIN_DURATION_S,
    LeaseTiming,
    parse_lease_ref,
)
from wattserve.render import RenderSettings, SettingsError, settings_from_env

ENV_METRICS_PORT = "WATTSERVE_METRICS_PORT"
ENV_HEALTH_PORT = "WATTSERVE_HEALTH_PORT"
ENV_RESYNC = "WATTSERVE_RESYNC_SECONDS"
ENV_FULL_RESYNC = "WATTSERVE_FULL_RESYNC_SECONDS"
ENV_POOL_STATUS = "WATTSERVE_POOL_STATUS_SECONDS"
ENV_WORKERS = "WATTSERVE_RECONCILE_WORKERS"
ENV_PEERING = "WATTSERVE_PEERING_NAME"
ENV_PRIORITY = "WATTSERVE_PEERING_PRIORITY"
ENV_POD_NAME = "WATTSERVE_OPERATOR_POD_NAME"
ENV_REBALANCE_DWELL = "WATTSERVE_REBALANCE_DWELL_SECONDS"
ENV_REBALANCE_GAIN = "WATTSERVE_REBALANCE_MIN_GAIN"
ENV_LEADER_LEASE = "WATTSERVE_LEADER_ELECTION_LEASE"
ENV_LEASE_SECONDS = "WATTSERVE_LEADER_ELECTION_LEASE_SECONDS"


@dataclass(frozen=True)
class OperatorConfig:
    namespaces: tuple[str, ...] = ()  # empty: every namespace
    metrics_port: int = 9090
    health_port: int = 8080
    standalone: bool = False
    peering_name: str = "wattserve"
    priority: int = 0
    resync_seconds: float = 300.0  # the periodic level-triggered reconcile of every MD
    full_resync_seconds: float = 1800.0  # re-LIST children (deletes missed by a watch gap)
    pool_status_seconds: float = 10.0  # how often ServingPool status is brought up to date
    workers: int = 16
    rebalance_dwell_seconds: float = 300.0  # time on a pool before a move back to a better one
    rebalance_min_gain: float = 0.10  # share of the objective a move back must save
    verbose: bool = False
    identity: str = ""
    pod_identity_prefix: str = ""  # identities of this pod's earlier processes start with it
    render: RenderSettings = field(default_factory=RenderSettings)
    autoscale: AutoscaleSettings = field(default_factory=AutoscaleSettings)
    activator_service: tuple[str, str] | None = None  # WATTSERVE_ACTIVATOR_SERVICE ns/name
    # Leader election: the Lease (namespace, name) replicas contend for; None: off (one
    # instance, or kopf peering decides which acts).
    leader_lease: tuple[str, str] | None = None
    lease: LeaseTiming = field(default_factory=LeaseTiming)

    @property
    def clusterwide(self) -> bool:
        return not self.namespaces


def _number(env: Mapping[str, str], name: str, default: float, minimum: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}: must be a number, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name}: must be >= {minimum:g}, got {raw}")
    return value


def env_defaults(env: Mapping[str, str] | None = None) -> dict[str, object]:
    """Defaults for the command line, from the environment (the Helm chart sets these)."""
    env = os.environ if env is None else env
    return {
        "metrics_port": int(_number(env, ENV_METRICS_PORT, 9090, 0)),
        "health_port": int(_number(env, ENV_HEALTH_PORT, 8080, 0)),
        "resync_seconds": _number(env, ENV_RESYNC, 300.0, 1.0),
        "full_resync_seconds": _number(env, ENV_FULL_RESYNC, 1800.0, 10.0),
        "pool_status_seconds": _number(env, ENV_POOL_STATUS, 10.0, 1.0),
        "workers": int(_number(env, ENV_WORKERS, 16, 1)),
        "rebalance_dwell_seconds": _number(env, ENV_REBALANCE_DWELL, 300.0, 0.0),
        "rebalance_min_gain": _number(env, ENV_REBALANCE_GAIN, 0.10, 0.0),
        "peering_name": env.get(ENV_PEERING, "").strip() or "wattserve",
        "priority": int(_number(env, ENV_PRIORITY, 0, -(2**31))),
        "render": settings_from_env(env),
        "autoscale": autoscale_from_env(env),
        "activator_service": activator_service_from_env(env),
        "leader_lease": lease_from_env(env),
        "lease_seconds": int(_number(env, ENV_LEASE_SECONDS, DEFAULT_DURATION_S,
                                     MIN_DURATION_S)),
    }


def lease_ref(raw: str, source: str) -> tuple[str, str] | None:
    """The leader Lease ``NAMESPACE/NAME``; empty: no leader election."""
    if not raw.strip():
        return None
    try:
        return parse_lease_ref(raw)
    except ValueError as err:
        raise SettingsError(f"{source}: {err}") from None


def lease_from_env(env: Mapping[str, str]) -> tuple[str, str] | None:
    return lease_ref(env.get(ENV_LEADER_LEASE, ""), ENV_LEADER_LEASE)


def pod_identity_prefix(env: Mapping[str, str] | None = None) -> str:
    """What the identities of every process of this pod start with; "" without a pod name
    from the downward API (a hostname alone may be shared by several processes)."""
    env = os.environ if env is None else env
    pod = env.get(ENV_POD_NAME, "").strip()
    return f"wattserve@{pod}/" if pod else ""


def make_identity(env: Mapping[str, str] | None = None) -> str:
    """This operator instance's peering and Lease identity: pod name (or host) + a random
    suffix (each process of a pod, e.g. after a container restart, is a new identity)."""
    prefix = pod_identity_prefix(env) or f"wattserve@{socket.gethostname()}/"
    return f"{prefix}{uuid.uuid4().hex[:8]}"
