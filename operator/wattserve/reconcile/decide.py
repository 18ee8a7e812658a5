"""The reconcile as a pure function: what was observed -> what to do.

``decide(observed, settings, now)`` parses the ModelDeployment, plans it, renders the
desired children, compares them with the live ones, and computes the new status, the
Events to post and the children to apply or delete. The runtime
(:mod:`wattserve.controller.reconciler`) only gathers the inputs from its caches and carries
the outcome out.

The reconcile is the one writer of ``status``: the autoscaler hands its decision over
in-process (:class:`ScalingUpdate`, ``Observed.scaling``); ``decide`` renders with its replica
count and folds its fields and ``Scaled`` condition into the one status patch.

Infeasible or invalid: no children are created; children that already run are KEPT (the
model keeps serving on its last good placement) and ``Degraded=True`` says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final

from wattserve import contract
from wattserve.api import SpecError, parse_model_deployment
from wattserve.api.conditions import PLAN_FAILURES, Reason
from wattserve.api.patching import apply_merge_patch, compose
from wattserve.api.status import ModelDeploymentStatus, ObjectMeta
from wattserve.api.types import Backend, ModelDeployment, ServingPool
from wattserve.planning import Plan, plan
from wattserve.planning.summary import decimal_string, placement_summary
from wattserve.reconcile import conditions as cond
from wattserve.reconcile.drift import foreign_controller, matches
from wattserve.reconcile.health import (
    Health,
    Problem,
    deployment_health,
    pod_problems,
    rayservice_health,
)
from wattserve.reconcile.idlestate import idle_memory, remember, remembered, with_memory
from wattserve.reconcile.moves import make_before_break, with_fleet_fields
from wattserve.reconcile.replicas import desired_replicas
from wattserve.reconcile.zero import (
    ActivatorEndpoints,
    activator_slice,
    learned_cold_start,
    needs_activator,
    parse_time,
    wake,
)
from wattserve.render import RenderInputs, RenderSettings, desired_children
from wattserve.render.children import CHILD_KINDS
from wattserve.render.children import RAYSERVICE as RAYSERVICE_KIND
from wattserve.render.rayservice import rayservice_name

ChildKey = tuple[str, str]  # (kind, name)
RAYSERVICE: Final = RAYSERVICE_KIND.kind


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass(frozen=True)
class ScalingUpdate:
    """An autoscaler decision not written yet, handed to the reconcile in-process.

    ``status``: the status fields the autoscaler reports (``observed``, ``current``,
    ``idle``, ``lastScale``, ``scaler``) as a merge patch; ``condition``: ``Scaled``;
    ``desired_replicas``: the new count (None: unchanged); ``events``: to post once written.
    """

    status: Mapping[str, Any] = field(default_factory=dict)
    condition: cond.Condition | None = None
    desired_replicas: int | None = None
    events: tuple[Event, ...] = ()

    def then(self, newer: ScalingUpdate) -> ScalingUpdate:
        """Two updates not written yet, as one (the newer wins field by field)."""
        return ScalingUpdate(
            compose(self.status, newer.status),
            newer.condition or self.condition,
            self.desired_replicas if newer.desired_replicas is None
            else newer.desired_replicas,
            self.events + newer.events)


@dataclass(frozen=True)
class Observed:
    body: Mapping[str, Any]  # the ModelDeployment as the API returned it
    pools: Sequence[ServingPool]
    children: Mapping[ChildKey, Mapping[str, Any]] = field(default_factory=dict)
    pods: Sequence[Mapping[str, Any]] = ()
    missing_kinds: frozenset[str] = frozenset()  # child kinds whose CRD is not installed
    apply_error: str | None = None  # the last failure applying this ModelDeployment's children
    pools_full: bool = False  # the fleet plan found feasible pools, none with room (PoolsFull)
    spilled_from: str | None = None  # the fleet plan's better pool that was full
    activator: ActivatorEndpoints | None = None  # scale to zero: where held requests go
    activator_unknown: bool = False  # configured but not listed yet (operator start)
    scaling: ScalingUpdate | None = None  # the autoscaler's decision, to write now
    autoscaler_disabled: bool = False  # no Prometheus URL: Scaled=False/AutoscalerDisabled


@dataclass(frozen=True)
class Outcome:
    result: str  # placed | infeasible | invalid
    apply: tuple[Mapping[str, Any], ...] = ()
    delete: tuple[tuple[str, str, str], ...] = ()  # (apiVersion, kind, name)
    status_patch: Mapping[str, Any] | None = None
    events: tuple[Event, ...] = ()
    plan: Plan | None = None
    placed_pool: str | None = None
    pinned_pool: str | None = None
    desired_replicas: int | None = None
    ready: bool = False
    idle_memory: Mapping[str, Any] | None = None  # scale to zero's memory after this reconcile
    annotations: Mapping[str, str] = field(default_factory=dict)  # to store (only on change)


def failure_reason(p: Plan) -> Reason:
    """The Placed=False reason naming the constraint that failed (the plan's code)."""
    return p.code if p.code in PLAN_FAILURES else Reason.NO_FEASIBLE_POOL


def _children_pool(children: Mapping[ChildKey, Mapping[str, Any]]) -> str | None:
    for child in children.values():
        pool = ObjectMeta.from_body(child).labels.get(contract.LABEL_K8S_POOL)
        if pool:
            return str(pool)
    return None


def _existing_health(children: Mapping[ChildKey, Mapping[str, Any]], name: str,
                     pods: Sequence[Mapping[str, Any]]) -> Health:
    dep = children.get(("Deployment", name))
    if dep is not None:
        spec = dep.get("spec") or {}
        return deployment_health(dep, int(spec.get("replicas") or 0))
    rs = children.get((RAYSERVICE, rayservice_name(name)))
    return rayservice_health(rs, 1, pods) if rs is not None else Health(0, False, "no workload")


def _finish(obs: Observed, updates: list[cond.Condition], new_status: dict[str, Any],
            events: list[Event], now: str) -> Mapping[str, Any] | None:
    st = ModelDeploymentStatus.from_body(obs.body)
    old_conditions = st.conditions
    placed = any(u.type == cond.PLACED and u.status == "True" for u in updates)
    scaled = cond.find(old_conditions, cond.SCALED)
    if obs.autoscaler_disabled:
        updates.append(cond.disabled_condition())
    elif scaled is None:  # the autoscaler sets it
        updates.append(cond.Condition(cond.SCALED, "Unknown", Reason.AWAITING_METRICS,
                                      "no scaling decision yet"))
    elif not placed and not any(u.type == cond.SCALED for u in updates):
        # The autoscaler looks at placed models only: the last decision stands, seen at
        # this generation (a condition's observedGeneration is the spec it describes).
        status: cond.Status = "True" if scaled.get("status") == "True" else (
            "False" if scaled.get("status") == "False" else "Unknown")
        updates.append(cond.Condition(cond.SCALED, status, str(scaled.get("reason")),
                                      str(scaled.get("message") or "")))
    for update in updates:
        if update.type == cond.DEGRADED and update.status == "True" and cond.is_new_reason(
                old_conditions, update):
            events.append(Event("Warning", update.reason, update.message))
    new_status["observedGeneration"] = st.generation
    new_status["conditions"] = cond.merge_conditions(old_conditions, updates, st.generation, now)
    return st.to_patch(new_status)


_RUNNING_KEYS = frozenset({"pool", "engine", "accelerator", "tensorParallel", "threads"})


def _not_placed(obs: Observed, reason: str, message: str, placement: dict[str, Any],
                result: str, pinned: str | None, p: Plan | None, now: str) -> Outcome:
    st = ModelDeploymentStatus.from_body(obs.body)
    old_conditions = st.conditions
    name = str(obs.body["metadata"]["name"])
    placed = cond.Condition(cond.PLACED, "False", reason, message)
    events = [Event("Warning", reason, message)] if cond.is_new_reason(
        old_conditions, placed) else []
    updates = [placed]
    new_status: dict[str, Any] = {"placement": placement}
    if obs.children:
        # Where the kept workload runs stays visible (kubectl's POOL and ENGINE columns),
        # beside the failed plan's reason and candidates.
        running = {k: v for k, v in (st.placement or {}).items() if k in _RUNNING_KEYS}
        new_status["placement"] = {**placement, **running}
        health = _existing_health(obs.children, name, obs.pods)
        kinds = ", ".join(sorted({kind for kind, _ in obs.children}))
        updates.append(cond.Condition(
            cond.READY, "True" if health.ready else "False",
            Reason.AVAILABLE if health.ready else Reason.REPLICAS_NOT_READY, health.message))
        updates.append(cond.Condition(
            cond.DEGRADED, "True", Reason.PLACEMENT_LOST,
            f"{message}; keeping the existing {kinds} running on its last placement"))
        new_status["replicas"] = dict(st.replicas) | {"ready": health.ready_replicas}
    else:
        updates.append(cond.Condition(cond.READY, "False", Reason.NOT_PLACED, message))
        updates.append(cond.Condition(cond.DEGRADED, "False", Reason.NO_WORKLOAD,
                                      "nothing is deployed"))
        new_status["replicas"] = {"ready": 0}
        if st.current and st.current.get("source") != "observed":
            new_status["current"] = None
    patch = _finish(obs, updates, new_status, events, now)
    return Outcome(result=result, status_patch=patch, events=tuple(events), plan=p,
                   placed_pool=_children_pool(obs.children), pinned_pool=pinned)


PLANNING_ERRORS = (ArithmeticError, ValueError, RecursionError, MemoryError)


def decide(obs: Observed, settings: RenderSettings, now: str,
           planned: Plan | None = None) -> Outcome:
    """``planned``: the plan of an earlier decide() on the same spec and pools (reused).

    With ``obs.scaling``, the reconcile sees the status as it will be once the autoscaler's
    fields are written, and the one patch carries both its own and the autoscaler's fields.
    """
    sc = obs.scaling
    if sc is None:
        return _remembered(obs.body, _decide(obs, settings, now, planned), idle_memory(obs.body))
    written = ModelDeploymentStatus.from_body(obs.body)
    patch = dict(sc.status)
    if sc.desired_replicas is not None:
        patch["replicas"] = {"desired": sc.desired_replicas}
    if sc.condition is not None:
        patch["conditions"] = cond.merge_conditions(written.conditions, [sc.condition],
                                                    written.generation, now)
    view = apply_merge_patch(written.raw, patch)
    idle = sc.status.get("idle")
    memory = remember(idle_memory(obs.body), idle if isinstance(idle, Mapping) else None)
    # A decision handed over means an autoscaler runs: its Scaled condition stands.
    disabled = obs.autoscaler_disabled and sc.condition is None
    body = with_memory({**obs.body, "status": view}, memory)
    out = _decide(replace(obs, body=body, scaling=None, autoscaler_disabled=disabled),
                  settings, now, planned)
    composed = compose(patch, out.status_patch or {})
    result = written.to_patch(apply_merge_patch(written.raw, composed)) or {}
    result |= {k: None for k, v in composed.items() if v is None and k in written.raw}
    return _remembered(obs.body, replace(out, status_patch=result or None,
                                         events=sc.events + out.events), memory)


def _remembered(before: Mapping[str, Any], out: Outcome, memory: Mapping[str, Any]) -> Outcome:
    """``out`` with scale to zero's memory stored (see :mod:`.idlestate`)."""
    final = out.idle_memory if out.idle_memory is not None else memory
    patch, annotations = remembered(before, out.status_patch, final)
    return replace(out, status_patch=patch, idle_memory=final, annotations=annotations)


def _decide(obs: Observed, settings: RenderSettings, now: str, planned: Plan | None) -> Outcome:
    try:
        md = parse_model_deployment(obs.body)
    except SpecError as err:
        return _not_placed(obs, Reason.INVALID_SPEC, str(err), {"reason": f"invalid spec: {err}"},
                           "invalid", None, None, now)
    pinned = md.spec.placement.pool
    try:
        p = planned if planned is not None else plan(md, obs.pools)
        if p.chosen is None:
            reason = Reason.POOLS_FULL if obs.pools_full else failure_reason(p)
            return _not_placed(obs, reason, p.reason, placement_summary(p), "infeasible",
                               pinned, p, now)
        return _placed(obs, md, p, settings, now)
    except PLANNING_ERRORS as err:
        # A bug or an input past the bounds: say so on the object, once, instead of a
        # traceback on every retry. The next spec or pool change plans again.
        message = f"planning failed ({type(err).__name__}): {err}"[:300]
        return _not_placed(obs, Reason.PLANNING_FAILED, message, {"reason": message}, "invalid",
                           pinned, None, now)


def _placed(obs: Observed, md: ModelDeployment, p: Plan, settings: RenderSettings,
            now: str) -> Outcome:
    cand = p.chosen
    assert cand is not None
    st = ModelDeploymentStatus.from_body(obs.body)
    old_placement = st.placement
    pool = next(pool for pool in obs.pools if pool.name == cand.pool)
    live = obs.children.get(("Deployment", md.name))
    child_replicas = (live.get("spec") or {}).get("replicas") if live is not None else None
    replicas = desired_replicas(cand, md.spec.scaling, st.desired_replicas, old_placement,
                                child_replicas if isinstance(child_replicas, int) else None)
    events: list[Event] = []
    memory = idle_memory(obs.body)
    idle_patch: dict[str, Any] = {}
    woken = wake(obs.body, replicas) if md.spec.backend is Backend.DEPLOYMENT else None
    if woken is not None:  # the activator holds requests: 0 -> 1 (the autoscaler goes on)
        replicas = max(1, min(1, md.spec.scaling.max_replicas))
        idle_patch = {"wakeRequestedAt": woken, "since": None}
        events.append(Event("Normal", Reason.ACTIVATED, f"0 -> {replicas} replicas: the activator "
                                                 f"holds requests (asked at {woken})"))
    try:
        inputs = RenderInputs(md, pool, cand, replicas, settings)
        wanted = [make_before_break(obj, obs.children.get(("Deployment", md.name)), cand.pool)
                  for obj in desired_children(inputs)]
    except SpecError as err:
        return _not_placed(obs, Reason.INVALID_SPEC, str(err), {"reason": f"invalid spec: {err}"},
                           "invalid", md.spec.placement.pool, p, now)
    if md.spec.backend is Backend.RAYSERVICE:
        health = rayservice_health(obs.children.get((RAYSERVICE, rayservice_name(md.name))),
                                   replicas, obs.pods)
    else:
        health = deployment_health(live, replicas)
        body = with_memory(obs.body, remember(memory, idle_patch)) if idle_patch else obs.body
        if obs.activator is not None and needs_activator(body, replicas, health.ready):
            wanted.append(activator_slice(inputs.owner, inputs.labels, obs.activator))
    apply: list[Mapping[str, Any]] = []
    delete: list[tuple[str, str, str]] = []
    problems: list[Problem] = []
    wanted_keys = set()
    blocked = False  # a wanted workload cannot be created: keep what serves meanwhile
    for obj in wanted:
        key = (str(obj["kind"]), str(obj["metadata"]["name"]))
        wanted_keys.add(key)
        if key[0] in obs.missing_kinds:
            blocked = True
            problems.append(Problem(Reason.RAYSERVICE_CRD_MISSING,
                                    "the ray.io/v1 RayService CRD is not installed: install "
                                    "KubeRay to use backend rayservice"))
            continue
        if key[0] == "NetworkPolicy" and RAYSERVICE in obs.missing_kinds:
            continue  # guards Ray pods that cannot exist without the CRD
        actual = obs.children.get(key)
        if actual is not None and foreign_controller(actual, md.uid):
            delete.append((str(obj["apiVersion"]), key[0], key[1]))
            apply.append(obj)
        elif not matches(obj, actual):
            apply.append(obj)
    for kind, name in sorted(set(obs.children) - wanted_keys):
        if kind == "EndpointSlice" and obs.activator_unknown:
            continue  # where the activator is is not known yet: leave its route alone
        if blocked:
            continue  # make before break: the old backend serves until the new one exists
        delete.append((CHILD_KINDS[kind].api_version, kind, name))

    if obs.apply_error:
        problems.append(Problem(Reason.APPLY_FAILED, obs.apply_error))
    problems.extend(health.problems)
    problems.extend(pod_problems(obs.pods))
    ready_cond = cond.Condition(cond.READY, "True" if health.ready else "False",
                               Reason.AVAILABLE if health.ready else Reason.REPLICAS_NOT_READY,
                               health.message)
    if replicas == 0:
        via = ("the activator holds requests and wakes it" if obs.activator is not None
               else "no activator is configured: requests fail until it is scaled up")
        ready_cond = cond.Condition(cond.READY, "True" if obs.activator else "False",
                                    Reason.SCALED_TO_ZERO, f"0 replicas (idle): {via}")
    updates = [
        cond.Condition(cond.PLACED, "True", Reason.PLACED, f"on {cand.pool}: {p.reason}"),
        ready_cond,
        cond.Condition(cond.DEGRADED, "True", problems[0].reason, problems[0].message)
        if problems else cond.Condition(cond.DEGRADED, "False", Reason.AS_EXPECTED,
                                        "no problems found"),
    ]
    old_where = (old_placement or {}).get("pool"), (old_placement or {}).get("engine")
    if old_where != (cand.pool, cand.engine):
        events.append(Event("Normal", Reason.PLACED, f"placed on {cand.pool} ({cand.engine}, "
                                                f"{replicas} replicas): {p.reason}"))
    new_status: dict[str, Any] = {
        "placement": with_fleet_fields(placement_summary(p), old_placement, cand.pool,
                                        obs.spilled_from, now),
        "replicas": {"desired": replicas, "ready": health.ready_replicas},
    }
    if woken is not None:
        new_status["lastScale"] = {"time": now, "from": 0, "to": replicas,
                                   "reason": str(Reason.ACTIVATED),
                                   "message": f"woken by the activator (asked at {woken})"}
    learned = learned_cold_start(obs.body, health.ready, parse_time(now) or 0.0)
    if learned or idle_patch:
        new_status["idle"] = dict(st.idle) | idle_patch | learned
    if st.current.get("source") != "observed":
        per_replica = cand.usd_per_hour / cand.replicas if cand.replicas else cand.usd_per_hour
        new_status["current"] = {
            "source": "predicted",
            "p95LatencyMs": decimal_string(cand.predicted_p95_ms),
            "joulesPerToken": decimal_string(cand.joules_per_token),
            "usdPerHour": decimal_string(per_replica * replicas),
        }
    patch = _finish(obs, updates, new_status, events, now)
    return Outcome(result="placed", apply=tuple(apply), delete=tuple(delete),
                   status_patch=patch, events=tuple(events), plan=p, placed_pool=cand.pool,
                   pinned_pool=md.spec.placement.pool, desired_replicas=replicas,
                   ready=health.ready, idle_memory=remember(memory, idle_patch | learned))
