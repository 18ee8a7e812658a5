"""The autoscaling policy: ``decide(spec, state, obs, now) -> (Decision, ScalerState)``.

Pure: no clock, no I/O; the caller passes ``now`` and keeps the returned state. Order:

1. Fail-static: no request rate, or any NaN / negative value -> replicas unchanged,
   ``MetricsUnavailable``; ``outage_started`` is true on the first such tick only.
2. Calibrate the seeded capacity model (EWMA): service speed from Little's law
   (``in_flight / request_rate`` is the measured time in service) and a p95 correction
   (observed / predicted p95 at the ready replica count).
3. Predictive recommendation: the smallest replica count whose predicted p95 (see
   :mod:`queueing`) stays under ``(1 - safety_margin) x SLO`` and whose utilization stays
   under the planned utilization (``target_utilization``; 0.95 for goal energy/carbon or a
   joules-per-token budget: fewer, busier replicas). Queued requests add a drain term
   ``queued / SLO`` to the arrival rate. Hysteresis: scale down only to a count that also
   meets a ``tolerance``-tighter threshold.
4. Reactive guard: observed p95 above the SLO -> at least ``ceil(ready x p95 / SLO)``
   (at most 2x), immediately, unless replicas already starting cover it.
5. Stabilization (HPA semantics): scale up to the lowest recommendation within
   ``scale_up_delay_s``, down to the highest within ``scale_down_delay_s``; scale-up rate
   limited to ``max(2 x current, current + max_scale_up_step)`` per decision.
6. Limits: never above ``maxReplicas`` or ``maxUSDPerHour``; a conflict between the SLO
   and a limit or the joules-per-token budget is reported (``conflict=True``), not hidden.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from wattserve.autoscale.model import Decision, Reason, ScalerState, ScalingInputs
from wattserve.autoscale.observe import Observation
from wattserve.autoscale.queueing import Load, Prediction, predict, service_time

_SPEED_BOUNDS = (0.25, 4.0)
_TAIL_BOUNDS = (0.5, 3.0)


def decide(
    spec: ScalingInputs, state: ScalerState, obs: Observation | None, now: float
) -> tuple[Decision, ScalerState]:
    current = spec.current_replicas if spec.current_replicas is not None else state.replicas
    starts = tuple((t, n) for t, n in state.starts if now - t < spec.cold_start_s)
    starting = min(current, sum(n for _, n in starts))
    ready = spec.ready_replicas if spec.ready_replicas is not None else current - starting

    if not _usable(obs):
        return _fail_static(state, current, starts, now)
    assert obs is not None and obs.request_rate is not None
    slo_s = spec.slo_p95_ms / 1000.0
    rate = obs.request_rate
    load = _load(spec, obs)
    speed, corr = _calibrate(spec, state, obs, load, ready)

    def pred(replicas: int, lam: float) -> Prediction:
        p = predict(spec.capacity, Load(lam, load.prompt_tokens, load.gen_tokens), replicas,
                    speed=speed, tail_factor=spec.tail_factor)
        return Prediction(p.p95_s * corr, p.ttft_p95_s * corr, p.concurrency, p.utilization)

    plan_rate = rate + (obs.queued or 0.0) / slo_s
    lo, hi = spec.effective_min(), spec.effective_max()
    threshold = (1.0 - spec.safety_margin) * slo_s
    util_cap = spec.planned_utilization()
    r_up = _smallest(pred, plan_rate, lo, hi, threshold, util_cap, spec)
    r_down = _smallest(pred, plan_rate, lo, hi, threshold * (1.0 - spec.tolerance),
                       util_cap * (1.0 - spec.tolerance), spec)
    conflict = r_up is None
    if r_up is None:
        rec, reason = hi, _limit_reason(spec)
    elif current < r_up:
        rec, reason = r_up, Reason.PREDICTED_LOAD
    elif r_down is not None and current > r_down:
        rec, reason = r_down, Reason.PREDICTED_LOAD
    else:
        rec, reason = current, Reason.WITHIN_TOLERANCE

    reactive = 0
    if obs.p95_latency_s is not None and obs.p95_latency_s > slo_s and ready > 0:
        reactive = max(ready + 1, math.ceil(ready * min(obs.p95_latency_s / slo_s, 2.0)))
        reactive = min(reactive, hi)
        if reactive > current:
            rec, reason = max(rec, reactive), Reason.SLO_VIOLATION
        elif reason != Reason.SLO_VIOLATION and starting > 0 and rec <= current:
            reason = Reason.WAITING_FOR_COLD_START
            rec = max(rec, current)  # do not undo replicas still warming up

    window = max(spec.scale_up_delay_s, spec.scale_down_delay_s)
    recs = (*tuple((t, r) for t, r in state.recommendations if now - t < window), (now, rec))
    desired = _stabilize(spec, recs, rec, current, now, immediate_up=reason == Reason.SLO_VIOLATION)
    if rec < desired == current:
        reason = Reason.STABILIZING
    desired = min(max(desired, lo), hi)

    p_desired = pred(desired, rate)
    extra: dict[str, float] = {"speed": speed, "tailCorrection": corr, "ready": float(ready),
                               "starting": float(starting)}
    jpt = _joules_per_token(spec, desired, p_desired, load)
    if jpt is not None:
        extra["predictedJoulesPerToken"] = jpt
    if (not conflict and spec.max_joules_per_token is not None and jpt is not None
            and jpt > spec.max_joules_per_token):
        conflict, reason = True, Reason.ENERGY_BUDGET
    if spec.min_replicas == 0 and desired == 1 and rate == 0 and not (obs.in_flight or 0):
        reason = Reason.SCALE_TO_ZERO

    if desired > current:
        starts = (*starts, (now, desired - current))
    msg = _message(reason, spec, obs, current, desired, ready, p_desired, jpt, plan_rate)
    decision = Decision(
        desired_replicas=desired, reason=reason.value, message=msg, conflict=conflict,
        predicted_p95_s=None if math.isinf(p_desired.p95_s) else p_desired.p95_s, extra=extra,
    )
    new_state = ScalerState(
        replicas=desired, recommendations=recs, starts=starts, speed=speed,
        tail_correction=corr, outage_since=None, last_rate=rate,
    )
    return decision, new_state


def _usable(obs: Observation | None) -> bool:
    if obs is None or obs.request_rate is None:
        return False
    for value in (obs.request_rate, obs.p95_latency_s, obs.p95_ttft_s, obs.prompt_tps,
                  obs.generation_tps, obs.in_flight, obs.queued, obs.joules_per_token):
        if value is not None and (not math.isfinite(value) or value < 0):
            return False
    return True


def _fail_static(
    state: ScalerState, current: int, starts: tuple[tuple[float, int], ...], now: float
) -> tuple[Decision, ScalerState]:
    started = state.outage_since is None
    since = now if state.outage_since is None else state.outage_since
    decision = Decision(
        desired_replicas=current, reason=Reason.METRICS_UNAVAILABLE.value,
        message=(f"No usable metrics for {now - since:.0f}s; keeping {current} replicas "
                 "until they return."),
        metrics_available=False, outage_started=started,
    )
    return decision, state.evolve(replicas=current, starts=starts, outage_since=since)


def _load(spec: ScalingInputs, obs: Observation) -> Load:
    rate = obs.request_rate or 0.0
    prompt, gen = spec.expected_prompt_tokens, spec.expected_gen_tokens
    if rate > 0 and obs.prompt_tps is not None and obs.prompt_tps > 0:
        prompt = obs.prompt_tps / rate
    if rate > 0 and obs.generation_tps is not None and obs.generation_tps > 0:
        gen = obs.generation_tps / rate
    return Load(rate, prompt, gen)


def _ewma(old: float, new: float, alpha: float, bounds: tuple[float, float]) -> float:
    new = min(max(new, bounds[0]), bounds[1])
    return (1.0 - alpha) * old + alpha * new


def _calibrate(
    spec: ScalingInputs, state: ScalerState, obs: Observation, load: Load, ready: int
) -> tuple[float, float]:
    speed, corr = state.speed, state.tail_correction
    rate = load.rate
    if ready <= 0 or rate <= 0:
        return speed, corr
    if obs.in_flight is not None and obs.in_flight >= 0.5:
        per_replica = obs.in_flight / ready
        measured = obs.in_flight / rate  # Little's law: mean time in service
        modelled = service_time(spec.capacity, load, per_replica, 1.0)
        speed = _ewma(speed, modelled / measured, spec.ewma_alpha, _SPEED_BOUNDS)
    if obs.p95_latency_s is not None and obs.p95_latency_s > 0:
        p = predict(spec.capacity, load, ready, speed=speed, tail_factor=spec.tail_factor)
        if math.isfinite(p.p95_s) and p.p95_s > 0 and p.utilization < 0.9:
            corr = _ewma(corr, obs.p95_latency_s / p.p95_s, spec.ewma_alpha, _TAIL_BOUNDS)
    return speed, corr


def _smallest(
    pred: Callable[[int, float], Prediction], rate: float, lo: int, hi: int,
    threshold: float, util_cap: float, spec: ScalingInputs,
) -> int | None:
    ttft = None if spec.slo_ttft_p95_ms is None else (
        (1.0 - spec.safety_margin) * spec.slo_ttft_p95_ms / 1000.0)
    for replicas in range(lo, hi + 1):
        p = pred(replicas, rate)
        if p.p95_s <= threshold and p.utilization <= util_cap and (
                ttft is None or p.ttft_p95_s <= ttft):
            return replicas
    return None


def _stabilize(
    spec: ScalingInputs, recs: tuple[tuple[float, int], ...], rec: int, current: int,
    now: float, *, immediate_up: bool,
) -> int:
    if rec > current:
        if immediate_up or spec.scale_up_delay_s <= 0:
            target = rec
        else:
            target = max(current, min(r for t, r in recs if now - t < spec.scale_up_delay_s
                                      or t == now))
        base = max(current, 1)
        return min(target, max(2 * base, base + spec.max_scale_up_step))
    if rec < current:
        window = [r for t, r in recs if now - t < spec.scale_down_delay_s or t == now]
        return min(current, max(window))
    return current


def _limit_reason(spec: ScalingInputs) -> Reason:
    if spec.effective_max() < spec.max_replicas:
        return Reason.USD_BUDGET
    return Reason.MAX_REPLICAS


def _joules_per_token(
    spec: ScalingInputs, replicas: int, p: Prediction, load: Load
) -> float | None:
    tps = load.rate * load.gen_tokens
    if tps <= 0 or spec.max_watts_per_replica <= 0:
        return None
    return replicas * spec.watts(p.utilization) / tps


def _message(
    reason: Reason, spec: ScalingInputs, obs: Observation, current: int, desired: int,
    ready: int, p: Prediction, jpt: float | None, plan_rate: float,
) -> str:
    observed = "n/a" if obs.p95_latency_s is None else f"{obs.p95_latency_s * 1000:.0f}ms"
    predicted = "unbounded" if math.isinf(p.p95_s) else f"{p.p95_s * 1000:.0f}ms"
    head = (f"{current}->{desired} replicas ({ready} ready): {obs.request_rate or 0:.2f} req/s "
            f"(planning {plan_rate:.2f}), observed p95 {observed}, predicted p95 {predicted} "
            f"at {p.utilization:.0%} utilization vs SLO {spec.slo_p95_ms:.0f}ms")
    tail = {
        Reason.MAX_REPLICAS: f"; the SLO needs more than maxReplicas={spec.max_replicas}",
        Reason.USD_BUDGET: (f"; the SLO needs more than the {spec.effective_max()} replicas "
                            f"maxUSDPerHour={spec.max_usd_per_hour} pays for"),
        Reason.ENERGY_BUDGET: (f"; meeting the SLO costs {jpt or 0:.3g} J/token, over the "
                               f"maxJoulesPerToken={spec.max_joules_per_token} budget"),
        Reason.SCALE_TO_ZERO: "; minReplicas 0 held at 1: scale-to-zero needs activation, "
                              "which is not implemented",
        Reason.STABILIZING: f"; scale-down held by the {spec.scale_down_delay_s:.0f}s window",
        Reason.WAITING_FOR_COLD_START: "; replicas still starting count as capacity coming",
        Reason.SLO_VIOLATION: "; observed p95 over the SLO, scaling up at once",
    }.get(reason, "")
    return head + tail + "."
