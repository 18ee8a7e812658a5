"""In-memory views of what kopf's watches deliver (children, pods, pools, ModelDeployments).

Children and pods are stored slimmed (no managedFields; pods keep only what health needs)
so a thousand ModelDeployments cost a few MB.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any, Final

from wattserve import contract
from wattserve.render.meta import OWNER_KIND

Key = tuple[str, str]  # (namespace, name)
ChildKey = tuple[str, str]  # (kind, name)


SHARED_MAX: Final = 64  # strings up to this long are shared between cached objects


def compact(value: Any) -> Any:
    """A copy whose keys and short strings are shared (``sys.intern``) with every other
    cached object: a thousand Deployments repeat the same keys and values ("containers",
    "IfNotPresent", label values, ...) and each JSON decode makes its own copies. Halves
    the caches' memory; the values compare equal, and are only read."""
    if isinstance(value, dict):
        return {sys.intern(k) if isinstance(k, str) else k: compact(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [compact(v) for v in value]
    if isinstance(value, str) and len(value) <= SHARED_MAX:
        return sys.intern(value)
    return value


def slim(obj: Mapping[str, Any]) -> dict[str, Any]:
    """What the caches keep of an object: all but ``metadata.managedFields``, compacted."""
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "managedFields"}
    out: dict[str, Any] = compact({**obj, "metadata": meta})
    return out


def slim_pod(pod: Mapping[str, Any]) -> dict[str, Any]:
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    out: dict[str, Any] = compact({
        "metadata": {k: meta[k] for k in ("name", "namespace", "labels", "deletionTimestamp")
                     if k in meta},
        "status": {k: status[k] for k in ("phase", "conditions", "containerStatuses",
                                          "initContainerStatuses") if k in status},
    })
    return out


def key_of(obj: Mapping[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def resource_version(obj: Mapping[str, Any] | None) -> str | None:
    """``metadata.resourceVersion`` (None for no object, or none given)."""
    if obj is None:
        return None
    rv = (obj.get("metadata") or {}).get("resourceVersion")
    return None if rv is None else str(rv)


def owner_of(obj: Mapping[str, Any]) -> Key | None:
    """The ModelDeployment controlling a child, from its ownerReferences."""
    meta = obj.get("metadata") or {}
    for ref in meta.get("ownerReferences") or ():
        if ref.get("kind") == OWNER_KIND and ref.get("controller"):
            return str(meta.get("namespace") or ""), str(ref.get("name"))
    return None


class ChildCache:
    """Children by owning ModelDeployment: {(ns, md): {(kind, name): object}}."""

    def __init__(self) -> None:
        self._by_owner: dict[Key, dict[ChildKey, dict[str, Any]]] = {}
        self._owner_of: dict[tuple[str, str, str], Key] = {}  # (kind, ns, name) -> owner
        self._touched: set[tuple[str, str, str]] | None = None  # while a re-LIST is out

    def __len__(self) -> int:
        return len(self._owner_of)

    def upsert(self, obj: Mapping[str, Any]) -> Key | None:
        """Cache ``obj``; the owner to reconcile, or None when nothing changed (the watch's
        echo of a write whose answer is cached already: same resourceVersion)."""
        kind = str(obj.get("kind") or "")
        ns, name = key_of(obj)
        if self._touched is not None:
            self._touched.add((kind, ns, name))
        owner = owner_of(obj)
        previous = self._owner_of.get((kind, ns, name))
        if previous is not None and previous != owner:
            self.remove(kind, ns, name)
        if owner is None:
            return previous
        children = self._by_owner.setdefault(owner, {})
        old = children.get((kind, name))
        rv = resource_version(obj)
        if old is not None and rv is not None and resource_version(old) == rv:
            return None
        children[(kind, name)] = slim(obj)
        self._owner_of[(kind, ns, name)] = owner
        return owner

    def answered(self, obj: Mapping[str, Any], before: str | None) -> None:
        """Cache the answer to a write of ours, unless the watch delivered the object while
        the write was in flight (its resourceVersion is no longer ``before``, the one cached
        when the write began). That event is the echo of the write or newer than the
        answer: the Deployment controller's status update landing between the server's
        answer and our reading it. Overwriting it with the older answer would leave the
        cache stale with no event left to correct it. (An event older than the write is
        followed by the write's own echo.)"""
        if resource_version(self.get(str(obj.get("kind") or ""), *key_of(obj))) == before:
            self.upsert(obj)

    def remove(self, kind: str, namespace: str, name: str) -> Key | None:
        if self._touched is not None:
            self._touched.add((kind, namespace, name))
        owner = self._owner_of.pop((kind, namespace, name), None)
        if owner is not None:
            children = self._by_owner.get(owner, {})
            children.pop((kind, name), None)
            if not children:
                self._by_owner.pop(owner, None)
        return owner

    def relisting(self, started: bool = True) -> None:
        """A re-LIST starts: remember what the watch changes until :meth:`renewed` (or
        forget it: ``started=False``, the LIST failed)."""
        self._touched = set() if started else None

    def renewed(self, fresh: ChildCache) -> ChildCache:
        """The cache after a re-LIST: ``fresh`` (what the LIST returned), except for the
        objects the watch changed or deleted while it was out. The watch's version of
        those is at least as new as the LIST's, or the LIST's comes next on the watch;
        taking the LIST's could put back an older status, or a deleted object, for good."""
        touched, self._touched = self._touched or set(), None
        for kind, ns, name in touched:
            fresh.remove(kind, ns, name)
            mine = self.get(kind, ns, name)
            if mine is not None:
                fresh.upsert(mine)
        return fresh

    def of(self, owner: Key) -> dict[ChildKey, dict[str, Any]]:
        return dict(self._by_owner.get(owner, {}))

    def has(self, kind: str, namespace: str, name: str) -> bool:
        return (kind, namespace, name) in self._owner_of

    def owner(self, kind: str, namespace: str, name: str) -> Key | None:
        """The ModelDeployment controlling the cached child of that name, if any."""
        return self._owner_of.get((kind, namespace, name))

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        owner = self._owner_of.get((kind, namespace, name))
        return None if owner is None else self._by_owner.get(owner, {}).get((kind, name))

    def owners(self) -> set[Key]:
        return set(self._by_owner)


class PodCache:
    """Serving pods by (namespace, wattserve.dev/model-deployment label value)."""

    def __init__(self) -> None:
        self._pods: dict[Key, dict[str, dict[str, Any]]] = {}

    def upsert(self, pod: Mapping[str, Any]) -> Key | None:
        ns, name = key_of(pod)
        label = ((pod.get("metadata") or {}).get("labels") or {}).get(
            contract.LABEL_K8S_MODEL_DEPLOYMENT)
        if not label:
            return None
        group = (ns, str(label))
        new = slim_pod(pod)
        old = self._pods.get(group, {}).get(name)
        self._pods.setdefault(group, {})[name] = new
        return group if old != new else None

    def remove(self, pod: Mapping[str, Any]) -> Key | None:
        ns, name = key_of(pod)
        label = ((pod.get("metadata") or {}).get("labels") or {}).get(
            contract.LABEL_K8S_MODEL_DEPLOYMENT)
        group = (ns, str(label))
        pods = self._pods.get(group)
        if pods is None or pods.pop(name, None) is None:
            return None
        if not pods:
            del self._pods[group]
        return group

    def of(self, group: Key) -> list[dict[str, Any]]:
        return list(self._pods.get(group, {}).values())

    def has(self, pod: Mapping[str, Any]) -> bool:
        ns, name = key_of(pod)
        label = ((pod.get("metadata") or {}).get("labels") or {}).get(
            contract.LABEL_K8S_MODEL_DEPLOYMENT)
        return name in self._pods.get((ns, str(label)), {})
