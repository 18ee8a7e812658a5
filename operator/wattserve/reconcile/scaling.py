"""One autoscaler tick's decision, status fields and events (pure).

The runtime loop (:mod:`wattserve.controller.autoscaler`) gathers a ModelDeployment, the
reconciler's last plan for it and an :class:`~wattserve.autoscale.Observation` from
Prometheus; :func:`tick` runs the policy (:func:`wattserve.autoscale.decide`) and turns its
decision into

* the status fields the autoscaler reports: ``scaler`` (a read-only view of the policy's
  memory), ``observed`` (live figures), ``current`` (``source: observed`` once latency has
  been observed), the ``Scaled`` condition;
* Events: ``Normal/Scaled`` per scale, one ``Warning/MetricsUnavailable`` per outage (the
  policy's ``outage_started``), one ``Warning/<conflict reason>`` when an SLO-vs-limit
  conflict starts;
* the new replica count and ``lastScale`` when the count changes.

:func:`handover` packs that into a :class:`~wattserve.reconcile.decide.ScalingUpdate` for the
reconciler, the one writer of status. The policy's memory across restarts is stored on
purpose in the ``wattserve.dev/scaler-state`` annotation (:func:`state_annotation`,
:func:`saved_state`), never read back from ``status``.

The spec -> :class:`~wattserve.autoscale.ScalingInputs` adapter is passed in (``adapter``;
:func:`wattserve.autoscale.inputs.scaling_inputs`, bound by
:mod:`wattserve.controller.autoscaling`). See docs/autoscaling.md, "Operator integration".
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from wattserve.api.conditions import Reason
from wattserve.api.status import ModelDeploymentStatus, ObjectMeta
from wattserve.api.types import Backend, ModelDeployment
from wattserve.autoscale import Decision, Observation, ScalerState, ScalingInputs, decide
from wattserve.autoscale.idleclock import idle_floor_s
from wattserve.autoscale.model import Reason as PolicyReason
from wattserve.planning.performance import ReplicaPerformance
from wattserve.planning.placement import Candidate
from wattserve.planning.summary import decimal_string
from wattserve.reconcile import conditions as cond
from wattserve.reconcile import zero
from wattserve.reconcile.conditions import ENV_PROMETHEUS_URL as ENV_PROMETHEUS_URL
from wattserve.reconcile.conditions import disabled_condition as disabled_condition
from wattserve.reconcile.decide import Event, ScalingUpdate

J_PER_KWH: Final = 3.6e6
# The policy's memory (ScalerState as JSON), written by the reconciler, read after a restart.
ANNOTATION_SCALER_STATE: Final = "wattserve.dev/scaler-state"

# Scaled condition reasons of the operator (the policy's reason is in the message).
SCALED_UP: Final = Reason.SCALED_UP
SCALED_DOWN: Final = Reason.SCALED_DOWN
STEADY: Final = Reason.STEADY
METRICS_UNAVAILABLE: Final = Reason.METRICS_UNAVAILABLE
AUTOSCALER_DISABLED: Final = Reason.AUTOSCALER_DISABLED


# The spec + a placement's performance -> the policy's static inputs.
InputsAdapter = Callable[[ModelDeployment, ReplicaPerformance], ScalingInputs]


@dataclass(frozen=True)
class TickOutcome:
    decision: Decision
    state: ScalerState
    status_patch: dict[str, Any]
    events: tuple[Event, ...] = ()
    current_replicas: int = 1
    desired_replicas: int | None = None  # set only when the count changes
    last_scale: dict[str, Any] | None = None
    condition: cond.Condition | None = None  # Scaled, as decided this tick


def current_replicas(body: Mapping[str, Any], cand: Candidate, rendered: int | None = None,
                     ) -> int:
    """The count the reconciler renders now (``rendered``, when it told us), else the one
    in status (a seam other scalers may write), else the plan's."""
    if rendered is not None and rendered >= 0:
        return rendered
    desired = ModelDeploymentStatus.from_body(body).desired_replicas
    return desired if desired is not None and desired >= 0 else max(cand.replicas, 1)


def ready_replicas(body: Mapping[str, Any]) -> int | None:
    ready = ModelDeploymentStatus.from_body(body).ready_replicas
    return ready if ready is not None and ready >= 0 else None


def inputs_for(md: ModelDeployment, cand: Candidate, body: Mapping[str, Any],
               window_s: float, adapter: InputsAdapter,
               rendered: int | None = None) -> ScalingInputs:
    """The policy's inputs: the spec + the placement's ``ReplicaPerformance`` + live facts."""
    assert cand.performance is not None
    base = adapter(md, cand.performance)
    return dataclasses.replace(base, metrics_window_s=window_s,
                               current_replicas=current_replicas(body, cand, rendered),
                               ready_replicas=ready_replicas(body))


def saved_state(body: Mapping[str, Any], replicas: int) -> ScalerState:
    """The policy's memory as last stored in the ``wattserve.dev/scaler-state`` annotation
    (after a restart); a missing or unreadable one starts afresh at ``replicas``."""
    raw = ObjectMeta.from_body(body).annotations.get(ANNOTATION_SCALER_STATE)
    if isinstance(raw, str):
        try:
            saved = json.loads(raw)
            if isinstance(saved, dict):
                return ScalerState.from_dict(saved)
        except (KeyError, TypeError, ValueError):
            pass
    return ScalerState(replicas=replicas)


def state_annotation(state: ScalerState) -> dict[str, str]:
    """The annotation that stores ``state`` (read back by :func:`saved_state`)."""
    return {ANNOTATION_SCALER_STATE: json.dumps(state.to_dict(), separators=(",", ":"))}


def handover(out: TickOutcome) -> ScalingUpdate:
    """What the reconciler writes for one tick: the autoscaler never patches status."""
    status = {k: v for k, v in out.status_patch.items() if k != "conditions"}
    if out.last_scale is not None:
        status["lastScale"] = out.last_scale
    return ScalingUpdate(status=status, condition=out.condition,
                         desired_replicas=out.desired_replicas, events=out.events)


def _num(value: float | None, digits: int = 4) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(f"{value:.{digits}g}")


def observed_status(obs: Observation, decision: Decision, cand: Candidate, replicas: int,
                    now_iso: str) -> dict[str, Any]:
    """``status.observed``: live figures (numbers; None removes a field that has no data).

    $/hour = replicas x the placement's $/replica-hour; $ and gCO2 per 1M tokens are per
    *generated* token (like J/token); calibrated capacity = the placement's requests/s per
    replica at the target utilization x the measured service speed.
    """
    perf = cand.performance
    per_replica_usd = perf.usd_per_hour if perf is not None else (
        cand.usd_per_hour / cand.replicas if cand.replicas else 0.0)
    usd_h = per_replica_usd * replicas
    gen = obs.generation_tps
    usd_m = usd_h / (gen * 3600) * 1e6 if gen and gen > 0 else None
    jpt = obs.joules_per_token
    g_kwh = perf.grams_co2_per_kwh if perf is not None else None
    co2_m = jpt * 1e6 / J_PER_KWH * g_kwh if jpt is not None and g_kwh is not None else None
    speed = decision.extra.get("speed")
    capacity = cand.capacity_rps_per_replica * speed if speed is not None else None
    tps = None if gen is None else gen + (obs.prompt_tps or 0.0)
    return {
        "requestRate": _num(obs.request_rate),
        "p95LatencyMs": _num(None if obs.p95_latency_s is None else obs.p95_latency_s * 1000),
        "p95TtftMs": _num(None if obs.p95_ttft_s is None else obs.p95_ttft_s * 1000),
        "tokensPerSecond": _num(tps),
        "generatedTokensPerSecond": _num(gen),
        "inFlight": _num(obs.in_flight),
        "queued": _num(obs.queued),
        "joulesPerToken": _num(jpt),
        "usdPerHour": _num(usd_h),
        "usdPerMillionTokens": _num(usd_m),
        "gramsCO2PerMillionTokens": _num(co2_m),
        "calibratedCapacityRpsPerReplica": _num(capacity),
        "energySource": obs.energy_source,
        "replicas": replicas,
        "time": now_iso,
    }


def current_status(old: Mapping[str, Any], observed: Mapping[str, Any]) -> dict[str, Any] | None:
    """``status.current`` from observations, once a p95 latency has been observed; fields
    without data keep their last value."""
    was_observed = old.get("source") == "observed"
    if observed.get("p95LatencyMs") is None and not was_observed:
        return None
    out: dict[str, Any] = {"source": "observed"}
    for key in ("p95LatencyMs", "joulesPerToken", "usdPerHour"):
        value = observed.get(key)
        if value is not None:
            out[key] = decimal_string(float(value))
        elif was_observed and old.get(key) is not None:
            out[key] = old[key]
    return out


def scaled_condition(decision: Decision, current: int, note: str = "") -> cond.Condition:
    status: cond.Status
    reason: str
    if decision.reason == zero.SCALED_TO_ZERO:
        status, reason = "True", zero.SCALED_TO_ZERO
    elif not decision.metrics_available:
        status, reason = "Unknown", METRICS_UNAVAILABLE
    elif decision.conflict:
        status, reason = "True", decision.reason
    elif decision.desired_replicas > current:
        status, reason = "True", SCALED_UP
    elif decision.desired_replicas < current:
        status, reason = "True", SCALED_DOWN
    else:
        status, reason = "True", STEADY
    # The policy's own reason leads the message when the condition's reason is another one.
    lead = "" if reason == decision.reason else f"{decision.reason}: "
    return cond.Condition(cond.SCALED, status, reason, f"{lead}{decision.message}{note}")


def conditions_patch(body: Mapping[str, Any], update: cond.Condition,
                     now_iso: str) -> list[dict[str, Any]] | None:
    """The whole new condition list, or None when the condition says the same already."""
    st = ModelDeploymentStatus.from_body(body)
    if not cond.is_new_reason(st.conditions, update):
        return None
    return cond.merge_conditions(st.conditions, [update], st.generation, now_iso)


def tick(md: ModelDeployment, body: Mapping[str, Any], cand: Candidate,
         state: ScalerState | None, obs: Observation | None, now: float, now_iso: str,
         window_s: float, error: str = "", *, adapter: InputsAdapter,
         rendered: int | None = None) -> TickOutcome:
    """One autoscaling decision for one placed ModelDeployment (pure). ``state`` None: the
    first tick since a start (read from the annotation); ``rendered``: the replica count the
    reconciler renders now."""
    inputs = inputs_for(md, cand, body, window_s, adapter, rendered)
    current = inputs.current_replicas if inputs.current_replicas is not None else 1
    if state is None:
        state = saved_state(body, current)
    decision, new_state = decide(inputs, state, obs, now)
    st = ModelDeploymentStatus.from_body(body)
    idle_patch: dict[str, Any] | None = None
    if md.spec.scaling.min_replicas == 0 and md.spec.backend is Backend.DEPLOYMENT:
        decision, new_state, idle_patch = _scale_to_zero(md, inputs, body, obs, current,
                                                         decision, new_state, now, window_s)
    patch: dict[str, Any] = {"scaler": new_state.to_dict()}
    if idle_patch is not None:
        patch["idle"] = idle_patch
    events: list[Event] = []
    note = f" ({error})" if error and not decision.metrics_available else ""
    if decision.metrics_available and obs is not None:
        observed = observed_status(obs, decision, cand, decision.desired_replicas, now_iso)
        patch["observed"] = observed
        current_patch = current_status(st.current, observed)
        if current_patch is not None:
            patch["current"] = current_patch
    elif decision.outage_started:
        events.append(Event("Warning", METRICS_UNAVAILABLE, decision.message + note))
    update = scaled_condition(decision, current, note)
    old_scaled = st.condition(cond.SCALED) or {}
    if decision.conflict and old_scaled.get("reason") != update.reason:
        events.append(Event("Warning", update.reason, decision.message))
    conditions = conditions_patch(body, update, now_iso)
    if conditions is not None:
        patch["conditions"] = conditions
    desired: int | None = None
    last_scale: dict[str, Any] | None = None
    if decision.desired_replicas != current:
        desired = decision.desired_replicas
        last_scale = {"time": now_iso, "from": current, "to": desired,
                      "reason": decision.reason, "message": decision.message}
        events.append(Event("Normal", Reason.SCALED,
                            f"{current} -> {desired} replicas ({decision.reason}): "
                            f"{decision.message}"))
    return TickOutcome(decision=decision, state=new_state, status_patch=patch,
                       events=tuple(events), current_replicas=current,
                       desired_replicas=desired, last_scale=last_scale, condition=update)


def _scale_to_zero(md: ModelDeployment, inputs: ScalingInputs, body: Mapping[str, Any],
                   obs: Observation | None, current: int, decision: Decision,
                   state: ScalerState, now: float, window_s: float,
                   ) -> tuple[Decision, ScalerState, dict[str, Any]]:
    """minReplicas 0: the idle timeout decides 1 -> 0; at 0 only an activation wakes it."""
    out = zero.idle_tick(md, inputs, body, obs, current, now, window_s, idle_floor_s(inputs))
    if out.desired == 0:
        decision = dataclasses.replace(decision, desired_replicas=0,
                                       reason=str(zero.SCALED_TO_ZERO), message=out.message,
                                       conflict=False, metrics_available=True,
                                       outage_started=False)
        state = state.evolve(replicas=0, starts=(), recommendations=())
    elif decision.reason == PolicyReason.SCALE_TO_ZERO.value:
        decision = dataclasses.replace(decision, message=decision.message.split(
            "; minReplicas 0")[0] + f"; minReplicas 0: {out.message}.")
    return decision, state, out.status


def placed_pool(body: Mapping[str, Any]) -> str | None:
    """The pool a ModelDeployment is placed on (``Placed=True``), else None."""
    return ModelDeploymentStatus.from_body(body).placed_pool()


def candidate_for(candidates: Sequence[Candidate], chosen: Candidate | None,
                  pool: str) -> Candidate | None:
    """The plan's candidate for the pool the ModelDeployment runs on (with performance)."""
    if chosen is not None and chosen.pool == pool and chosen.performance is not None:
        return chosen
    for c in candidates:
        if c.pool == pool and c.feasible and c.performance is not None:
            return c
    return None
