"""Scale to zero, the operator's side (pure): idle tracking, wake-up, the activator route.

* The autoscaler's tick (:func:`idle_tick`): with ``minReplicas: 0``, a model that served
  nothing (request rate, in-flight and queued all 0 over the PromQL window) for the idle
  timeout of :func:`wattserve.autoscale.idle.idle_timeout` goes to 0 replicas; at 0 it stays
  there (only an activation wakes it). ``status.idle`` says the timeout and why.
* What these need across ticks and restarts (the idle memory) is read from the
  ``wattserve.dev/idle-state`` annotation (:mod:`.idlestate`), never from ``status.idle``.
* The reconcile (:func:`wake`): the activator annotates the ModelDeployment
  (``contract.ANNOTATION_ACTIVATION``); an annotation newer than the stored scale to zero
  (``scaledToZeroAt`` of the idle memory) turns 0 into 1 replica. When the woken replica
  is Ready the wake-to-Ready time is learned (:func:`learned_cold_start`) and feeds the
  next idle timeout.
* While at zero, or woken and not Ready yet, the model's Service also routes to the
  activator: an extra EndpointSlice of that Service with the activator's pod addresses
  (:func:`activator_slice`); kube-proxy merges every slice of a Service. It is deleted once a
  replica is Ready, so the activator is off the request path whenever replicas are up.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeGuard

from wattserve import contract
from wattserve.api.conditions import Reason
from wattserve.api.status import ObjectMeta
from wattserve.api.types import ModelDeployment
from wattserve.autoscale.idle import (
    MAX_GAPS,
    IdleDecision,
    IdleInputs,
    idle_timeout,
    inputs_for,
    learn_cold_start,
)
from wattserve.autoscale.idleclock import active_rate_after, advance
from wattserve.autoscale.model import ScalingInputs
from wattserve.autoscale.observe import Observation
from wattserve.reconcile.idlestate import idle_memory
from wattserve.render.children import SLICE_MANAGER
from wattserve.render.meta import Owner, object_meta, service_name

SCALED_TO_ZERO: Final = Reason.SCALED_TO_ZERO
ACTIVATED: Final = Reason.ACTIVATED


@dataclass(frozen=True)
class ActivatorEndpoints:
    """The activator's ready pod addresses and port (from its Service's EndpointSlices)."""

    addresses: tuple[str, ...]
    port: int = contract.ACTIVATOR_PORT


def parse_time(value: Any) -> float | None:
    """Seconds since the epoch of an RFC 3339 time, None if absent or malformed."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return parsed.timestamp()


def iso(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---- the autoscaler's tick ------------------------------------------------------------

def idle_inputs(md: ModelDeployment, spec: ScalingInputs, idle: Mapping[str, Any],
                floor_s: float = 0.0) -> IdleInputs:
    """Seeded from the placement (cold start, pool power and price), learned (``idle``: the
    idle memory, :func:`~wattserve.reconcile.idlestate.idle_memory`)."""
    learned = idle.get("coldStartSeconds")
    rate = idle.get("activeRate")
    override = md.spec.scaling.idle_timeout_seconds
    return inputs_for(
        spec, cold_start_s=float(learned) if _number(learned) and learned >= 0 else None,
        active_rate=float(rate) if _number(rate) and rate >= 0 else 0.0,
        gaps=remembered_gaps(idle), floor_s=floor_s,
        override_s=None if override is None else float(override))


def _number(value: Any) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(
        value)


def remembered_gaps(idle: Mapping[str, Any]) -> tuple[float, ...]:
    """The idle gaps in the memory (anything else in that field is ignored)."""
    raw = idle.get("gaps")
    if not isinstance(raw, list):
        return ()
    return tuple(float(g) for g in raw if _number(g) and g >= 0)[-MAX_GAPS:]


@dataclass(frozen=True)
class IdleOutcome:
    desired: int | None  # 0 to scale to zero, else None (the policy decides)
    status: dict[str, Any]  # status.idle (merge patch)
    message: str  # for the Scaled condition when desired is 0 or the model is at zero
    decision: IdleDecision


def idle_tick(md: ModelDeployment, spec: ScalingInputs, body: Mapping[str, Any],
              obs: Observation | None, current: int, now: float,
              window_s: float, floor_s: float = 0.0) -> IdleOutcome:
    """The scale-to-zero part of one autoscaler tick (``minReplicas: 0`` only)."""
    idle = idle_memory(body)
    decision = idle_timeout(idle_inputs(md, spec, idle, floor_s))
    # coldStartSeconds belongs to the reconcile (learned from wake-ups); not written here.
    status: dict[str, Any] = {"timeoutSeconds": round(decision.seconds),
                              "reason": decision.reason, "message": decision.message}
    if obs is not None and obs.request_rate is not None and obs.request_rate > 0:
        old = idle.get("activeRate")
        status["activeRate"] = round(active_rate_after(
            float(old) if _number(old) else None, obs.request_rate), 4)
    if current == 0:
        zeroed = parse_time(idle.get("scaledToZeroAt"))
        zero_for = "" if zeroed is None else f" for {now - zeroed:.0f}s"
        return IdleOutcome(0, status, f"0 replicas{zero_for}: idle; the activator holds the "
                           "next request and wakes the model", decision)
    woken = parse_time(idle.get("wakeRequestedAt")) or parse_time(idle.get("wokenAt"))
    clock = advance(parse_time(idle.get("since")), remembered_gaps(idle), obs, now=now,
                    window_s=window_s, woken=woken)
    if clock.gap_ended:
        status["gaps"] = list(clock.gaps)
    if clock.since is None:  # in use, a gap just ended, or idleness not known
        status["since"] = None
        return IdleOutcome(None, status, "", decision)
    since = clock.since
    status["since"] = iso(since)
    idle_for = now - since
    if idle_for < decision.seconds:
        return IdleOutcome(None, status, f"idle for {idle_for:.0f}s of the "
                           f"{decision.seconds:.0f}s idle timeout", decision)
    status["scaledToZeroAt"] = iso(now)
    status["since"] = iso(since)
    return IdleOutcome(0, status, f"{current}->0 replicas: idle for {idle_for:.0f}s >= the "
                       f"{decision.seconds:.0f}s idle timeout ({decision.reason}); the "
                       "activator holds the next request and wakes the model", decision)


# ---- the reconcile --------------------------------------------------------------------

def activation_time(body: Mapping[str, Any]) -> float | None:
    annotations = ObjectMeta.from_body(body).annotations
    return parse_time(annotations.get(contract.ANNOTATION_ACTIVATION))


def wake(body: Mapping[str, Any], status_desired: int | None) -> str | None:
    """The activation annotation when it asks to wake a model at zero (newer than its
    scale to zero), else None."""
    if status_desired != 0:
        return None
    asked = activation_time(body)
    if asked is None:
        return None
    zeroed = parse_time(idle_memory(body).get("scaledToZeroAt"))
    if zeroed is not None and asked <= zeroed:
        return None
    annotations = ObjectMeta.from_body(body).annotations
    return str(annotations.get(contract.ANNOTATION_ACTIVATION))


def learned_cold_start(body: Mapping[str, Any], ready: bool, now: float) -> dict[str, Any]:
    """``status.idle`` fields to write when a woken replica became Ready (else {})."""
    idle = idle_memory(body)
    asked = parse_time(idle.get("wakeRequestedAt"))
    if asked is None or not ready:
        return {}
    observed = max(0.0, now - asked)
    old = idle.get("coldStartSeconds")
    learned = learn_cold_start(float(old) if isinstance(old, (int, float)) and math.isfinite(
        old) and idle.get("coldStartLearned") else None, observed)
    return {"wakeRequestedAt": None, "wokenAt": idle.get("wakeRequestedAt"),
            "lastColdStartSeconds": round(observed, 2), "coldStartSeconds": round(learned, 2),
            "coldStartLearned": True}


def needs_activator(body: Mapping[str, Any], replicas: int, ready: bool) -> bool:
    """At zero, or woken and not Ready yet: requests must reach the activator."""
    if replicas == 0:
        return True
    return not ready and parse_time(idle_memory(body).get("wakeRequestedAt")) is not None


def activator_slice(owner: Owner, labels: Mapping[str, str],
                    endpoints: ActivatorEndpoints) -> dict[str, Any]:
    """An EndpointSlice of the model's Service that points at the activator pods."""
    svc = service_name(owner.name)
    slice_labels = dict(labels) | {"kubernetes.io/service-name": svc,
                                   "endpointslice.kubernetes.io/managed-by": SLICE_MANAGER}
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": object_meta(owner, f"{svc[:50]}-activator", slice_labels),
        "addressType": "IPv4",
        "endpoints": [{"addresses": [address], "conditions": {"ready": True}}
                      for address in sorted(endpoints.addresses)],
        "ports": [{"name": "http", "port": endpoints.port, "protocol": "TCP"}],
    }
