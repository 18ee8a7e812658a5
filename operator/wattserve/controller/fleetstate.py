"""The fleet as the operator sees it: nodes per pool, each ModelDeployment's plan (cached
per generation and pool set) and what runs where, turned into the fleet assignment by the
pure :func:`wattserve.planning.refine.place`. ModelDeployments that arrive after it was
computed are placed on it when they come last in the greedy's order (a create wave: no
pass over the whole fleet per newcomer, see planning/incremental.py). No API calls: the
reconciler feeds it."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable, Mapping
from datetime import datetime
from typing import Any, Final

from wattserve import contract
from wattserve.api import SpecError, parse_model_deployment
from wattserve.api.cluster import Node
from wattserve.api.types import ModelDeployment, ServingPool
from wattserve.controller import metrics
from wattserve.planning import Plan, plan
from wattserve.planning.capacity import (
    PoolCapacity,
    node_in_pool,
    pool_capacity,
    template_request,
)
from wattserve.planning.fleet import Assignment, Member, Rebalance
from wattserve.planning.incremental import FleetPlacement, place_fleet

Key = tuple[str, str]
ChildKey = tuple[str, str]
MAX_AGE_S: Final = 5.0  # a computed assignment is reused this long unless invalidated


def _epoch(text: object) -> float | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class FleetState:
    def __init__(self, policy: Rebalance | None = None) -> None:
        self.policy = policy or Rebalance()
        self.nodes: dict[str, Node] = {}
        self._plans: dict[Key, tuple[tuple[Any, ...], ModelDeployment, Plan]] = {}
        self._pools_version = 0
        self._result: dict[Key, tuple[Member, Assignment]] | None = None
        self._placement: FleetPlacement | None = None  # what extends ``_result``
        self._added: set[Key] = set()  # ModelDeployments new since ``_result``
        # Per pool list, until a node changes (a pool's total is computed once per capacity).
        self._capacities: tuple[list[ServingPool], dict[str, PoolCapacity]] | None = None
        self._computed_at = 0.0
        # scipy (≈ 48 MB resident, ≈ 0.5 s to import) is imported by the first fleet that
        # needs the fleet's program (planning/refine.py), not at start: a fleet where every
        # model gets its own best pool never pays for it.

    def last(self) -> tuple[list[Assignment], Mapping[str, PoolCapacity]] | None:
        """The last assignment and the capacities it was computed on, as they are (None:
        none since the last change)."""
        if self._result is None or self._capacities is None:
            return None
        return [got for _, got in self._result.values()], self._capacities[1]

    def invalidate(self) -> None:
        self._result = None
        self._added.clear()

    def as_assigned(self, key: Key, child: Mapping[str, Any],
                    pools: Mapping[str, ServingPool]) -> bool:
        """Whether a new child of ``key`` runs exactly what the current assignment gave it
        (its pool; for a Deployment also its replicas and pod request): the assignment's
        ledgers already hold that room, so the fleet need not be placed afresh for it. (A
        full pass would count it as running before the others' turns, which can only pick
        another feasible assignment; it comes at the latest after ``MAX_AGE_S``.)"""
        got = (self._result or {}).get(key)
        assignment = got[1] if got is not None else None
        if assignment is None or assignment.candidate is None:
            return False
        pool_name = assignment.candidate.pool
        labels = (child.get("metadata") or {}).get("labels") or {}
        if labels.get(contract.LABEL_K8S_POOL) != pool_name or pool_name not in pools:
            return False
        if child.get("kind") != "Deployment":
            return True
        accelerator = pools[pool_name].spec.accelerator
        replicas = int((child.get("spec") or {}).get("replicas") or 0)
        return replicas == assignment.replicas and template_request(
            child, accelerator.resource_name if accelerator else None) == assignment.request

    def pools_changed(self) -> None:
        self._pools_version += 1
        self._capacities = None
        self.invalidate()

    def forget(self, key: Key) -> None:
        self._plans.pop(key, None)
        self.invalidate()

    def node_upsert(self, obj: Mapping[str, Any], pools: Iterable[ServingPool]) -> set[str]:
        """Cache the node (typed: what capacity reads of it); the pools whose capacity
        changed (empty if nothing did)."""
        slim = Node.from_body(obj)
        name = slim.name
        before = self.nodes.get(name)
        if before == slim:
            return set()
        self.nodes[name] = slim
        self._capacities = None
        self.invalidate()
        return {p.name for p in pools if node_in_pool(slim, p)
                or (before is not None and node_in_pool(before, p))}

    def node_deleted(self, obj: Mapping[str, Any], pools: Iterable[ServingPool]) -> set[str]:
        before = self.nodes.pop(Node.from_body(obj).name, None)
        if before is None:
            return set()
        self._capacities = None
        self.invalidate()
        return {p.name for p in pools if node_in_pool(before, p)}

    def plan_of(self, key: Key, body: Mapping[str, Any],
                pools: list[ServingPool]) -> tuple[ModelDeployment, Plan] | None:
        meta = body.get("metadata") or {}
        version = (meta.get("generation"), meta.get("uid"), self._pools_version)
        cached = self._plans.get(key)
        if cached is not None and cached[0] == version:
            return cached[1], cached[2]
        try:
            md = parse_model_deployment(body)
        except SpecError:
            return None
        result = plan(md, pools)
        self._plans[key] = (version, md, result)
        return md, result

    def added(self, key: Key) -> None:
        """A ModelDeployment seen for the first time: the next assignment places it after
        the others when it comes last in the greedy's order (a create wave), else afresh."""
        if self._result is not None:
            self._added.add(key)

    def assignment(self, mds: Mapping[Key, Mapping[str, Any]], pools: list[ServingPool],
                   children_of: Callable[[Key], Mapping[ChildKey, Mapping[str, Any]]],
                   now: float | None = None) -> tuple[dict[Key, tuple[Member, Assignment]],
                                                      Collection[Key]]:
        """The fleet's assignment and the keys whose assignment is new: all of them when
        computed afresh, the newcomers when only they were placed, none when reused."""
        clock = time.time() if now is None else now
        if self._result is not None and clock - self._computed_at < MAX_AGE_S:
            if not self._added:
                metrics.FLEET_PASSES.labels("reused").inc()
                return self._result, ()
            placed = self._place_newcomers(mds, pools, children_of)
            if placed is not None:
                metrics.FLEET_PASSES.labels("newcomers").inc()
                return self._result, placed
        metrics.FLEET_PASSES.labels("full").inc()
        by_name = {pool.name: pool for pool in pools}
        members = []
        for key, body in mds.items():
            meta = body.get("metadata") or {}
            if meta.get("deletionTimestamp"):
                continue
            planned = self.plan_of(key, body, pools)
            if planned is None:
                continue
            members.append(_member(planned[0], planned[1], body, children_of(key), by_name))
        if self._capacities is None or self._capacities[0] != pools:
            self._capacities = (list(pools), {pool.name: pool_capacity(pool, self.nodes.values())
                                              for pool in pools})
        capacities = self._capacities[1]
        self._placement = place_fleet(members, pools, capacities, clock, self.policy)
        got = self._placement.result
        self._result = {m.key: (m, got[m.key]) for m in members}
        self._computed_at = clock
        self._added.clear()
        return self._result, self._result.keys()

    def _place_newcomers(self, mds: Mapping[Key, Mapping[str, Any]], pools: list[ServingPool],
                         children_of: Callable[[Key], Mapping[ChildKey, Mapping[str, Any]]],
                         ) -> list[Key] | None:
        """Extend the last assignment by the ModelDeployments added since (exactly what a
        full pass at the same time would give); None: a full pass is needed."""
        assert self._result is not None
        if self._placement is None:
            return None
        by_name = {pool.name: pool for pool in pools}
        members = []
        for key in sorted(self._added):
            body = mds.get(key)
            if body is None or (body.get("metadata") or {}).get("deletionTimestamp"):
                continue
            planned = self.plan_of(key, body, pools)
            if planned is not None:
                members.append(_member(planned[0], planned[1], body, children_of(key),
                                       by_name))
        got = self._placement.add(members)
        if got is None:
            return None
        self._result = self._result | {m.key: (m, got[m.key]) for m in members}
        self._added.clear()
        return [m.key for m in members]


def _member(md: ModelDeployment, result: Plan, body: Mapping[str, Any],
            children: Mapping[ChildKey, Mapping[str, Any]],
            pools: Mapping[str, ServingPool]) -> Member:
    meta = body.get("metadata") or {}
    placement = (body.get("status") or {}).get("placement") or {}
    current_pool = None
    replicas = 0
    request = None
    for (kind, _), child in sorted(children.items()):
        labels = (child.get("metadata") or {}).get("labels") or {}
        pool_name = labels.get(contract.LABEL_K8S_POOL)
        if not pool_name:
            continue
        current_pool = str(pool_name)
        if kind == "Deployment" and current_pool in pools:
            pool = pools[current_pool]
            gpu = pool.spec.accelerator.resource_name if pool.spec.accelerator else None
            replicas = int((child.get("spec") or {}).get("replicas") or 0)
            request = template_request(child, gpu)
            break
    return Member(md, result, created=str(meta.get("creationTimestamp") or ""),
                  current_pool=current_pool, current_replicas=replicas,
                  current_request=request,
                  placed_at=_epoch(placement.get("placedAt")) if isinstance(placement, Mapping)
                  else None)
