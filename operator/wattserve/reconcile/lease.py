"""Leader election over a ``coordination.k8s.io/v1`` Lease, decided purely.

Several operator replicas may run; one holds the Lease and acts, the others keep their caches
warm and wait. The rules are client-go's ``leaderelection`` package's:

* no Lease yet: create it, holding it;
* we hold it: renew it (``renewTime`` now);
* nobody holds it (released on a clean shutdown: ``holderIdentity`` empty): take it now;
* an earlier process of this same pod holds it (the container restarted: that process is
  gone): take it now, instead of waiting out a lease no one will renew;
* another holds it: take it only when the record has not changed for its
  ``leaseDurationSeconds`` *as timed by this instance's own monotonic clock* since it last saw
  the record change. Wall clocks of the nodes are never compared, so clock skew between them
  cannot hand the lease to two instances.

Every write carries the ``resourceVersion`` it read: of two instances taking the same expired
lease, the API server accepts one and answers the other 409 Conflict.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, Final

from wattserve.api.labels import is_dns_label, is_dns_subdomain

LEASE_API_VERSION: Final = "coordination.k8s.io/v1"
DEFAULT_DURATION_S: Final = 15
MIN_DURATION_S: Final = 2


@dataclass(frozen=True)
class LeaseTiming:
    """client-go's defaults are 15 s / 10 s / 2 s; every duration scales them alike."""

    duration_s: int = DEFAULT_DURATION_S

    @property
    def renew_deadline_s(self) -> float:
        """A leader that could not renew for this long stops acting (before its lease ends,
        so that a follower taking it over never overlaps a leader still writing)."""
        return self.duration_s * 2 / 3

    @property
    def retry_s(self) -> float:
        """Between two tries to acquire or renew."""
        return max(0.25, self.duration_s / 7.5)


def parse_lease_ref(raw: str) -> tuple[str, str]:
    """``NAMESPACE/NAME`` of the Lease; ValueError naming what is wrong."""
    namespace, sep, name = raw.strip().partition("/")
    if not sep:
        raise ValueError(f"must be NAMESPACE/NAME, got {raw!r}")
    if not is_dns_label(namespace):
        raise ValueError(f"namespace {namespace!r} is not a DNS label")
    if not is_dns_subdomain(name):
        raise ValueError(f"name {name!r} is not a DNS subdomain")
    return namespace, name


def micro_time(when: datetime.datetime) -> str:
    """A Kubernetes MicroTime (RFC 3339, microseconds, UTC)."""
    return when.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class LeaseRecord:
    holder: str  # "" once released
    duration_s: int
    acquire_time: str | None = None
    renew_time: str | None = None
    transitions: int = 0
    resource_version: str | None = None

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> LeaseRecord:
        spec = body.get("spec")
        spec = spec if isinstance(spec, Mapping) else {}
        meta = body.get("metadata")
        meta = meta if isinstance(meta, Mapping) else {}

        def number(key: str, default: int) -> int:
            value = spec.get(key)
            return value if isinstance(value, int) and not isinstance(value, bool) else default

        def text(key: str) -> str | None:
            value = spec.get(key)
            return value if isinstance(value, str) else None

        version = meta.get("resourceVersion")
        return cls(holder=text("holderIdentity") or "",
                   duration_s=number("leaseDurationSeconds", DEFAULT_DURATION_S),
                   acquire_time=text("acquireTime"), renew_time=text("renewTime"),
                   transitions=number("leaseTransitions", 0),
                   resource_version=version if isinstance(version, str) else None)

    def to_body(self, namespace: str, name: str,
                labels: Mapping[str, str] | None = None) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": name, "namespace": namespace}
        if self.resource_version is not None:
            meta["resourceVersion"] = self.resource_version
        if labels:
            meta["labels"] = dict(labels)
        spec: dict[str, Any] = {"leaseDurationSeconds": self.duration_s,
                                "leaseTransitions": self.transitions}
        if self.holder:
            spec["holderIdentity"] = self.holder
        if self.acquire_time is not None:
            spec["acquireTime"] = self.acquire_time
        if self.renew_time is not None:
            spec["renewTime"] = self.renew_time
        return {"apiVersion": LEASE_API_VERSION, "kind": "Lease", "metadata": meta,
                "spec": spec}


class Action(StrEnum):
    CREATE = "create"  # no Lease: POST one that we hold
    RENEW = "renew"  # ours: PUT a later renewTime
    ACQUIRE = "acquire"  # released or expired: PUT us as the holder
    FOLLOW = "follow"  # another instance holds it: write nothing


@dataclass(frozen=True)
class Step:
    action: Action
    holder: str  # who holds the Lease once this step's write (if any) succeeds
    record: LeaseRecord | None = None  # what to write; None for FOLLOW


def decide(current: LeaseRecord | None, identity: str, timing: LeaseTiming,
           now: datetime.datetime, unchanged_for_s: float, predecessor: str = "") -> Step:
    """What this instance writes next. ``unchanged_for_s``: how long, by this instance's own
    monotonic clock, the record has looked the same (0 when it changed or was first seen).
    ``predecessor``: the identity prefix every process of this pod shares ("" when the pod
    is not known for sure: a hostname is not unique to one process)."""
    stamp = micro_time(now)
    if current is None:
        return Step(Action.CREATE, identity, LeaseRecord(
            identity, timing.duration_s, acquire_time=stamp, renew_time=stamp))
    if current.holder == identity:
        return Step(Action.RENEW, identity, replace(
            current, duration_s=timing.duration_s, renew_time=stamp))
    expired = unchanged_for_s >= max(current.duration_s, 1)
    restarted = bool(predecessor) and current.holder.startswith(predecessor)
    if current.holder and not expired and not restarted:
        return Step(Action.FOLLOW, current.holder)
    return Step(Action.ACQUIRE, identity, replace(
        current, holder=identity, duration_s=timing.duration_s, acquire_time=stamp,
        renew_time=stamp, transitions=current.transitions + 1))


def released(current: LeaseRecord, now: datetime.datetime) -> LeaseRecord:
    """What a leader writes on a clean shutdown: no holder, so a follower takes the Lease at
    its next try instead of waiting out the duration (client-go's ReleaseOnCancel)."""
    return replace(current, holder="", duration_s=1, renew_time=micro_time(now))
