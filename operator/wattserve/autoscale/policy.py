"""The autoscaling policy: ``decide(spec, state, obs, now) -> (Decision, ScalerState)``.

Pure: no clock, no I/O; the caller passes ``now`` and keeps the returned state. Order:

1. Fail-static: no request rate, or any NaN / negative value -> replicas unchanged,
   ``MetricsUnavailable``; ``outage_started`` is true on the first such tick only.
2. Calibrate the seeded capacity model (EWMA, :mod:`calibration`): service speed from
   Little's law (the window's time average of sequences in service - the duration
   histogram's sum per second, else the in-flight gauge - over the request rate is the
   measured time in service; a gauge that over-reads that average is scaled down), a p95
   correction (observed / predicted p95 at the ready replica count) and the mean
   lengths — only on settled windows (one traffic regime for a whole window).
3. Predictive recommendation: the smallest replica count whose predicted p95 (see
   :mod:`queueing`) stays under ``(1 - margin) x SLO`` (the margin widens after observed
   SLO misses) and whose utilization stays under the planned utilization
   (``target_utilization``; 0.95 for goal energy/carbon or a joules-per-token budget:
   fewer, busier replicas). Queued requests add a drain term
   ``queued / SLO`` to the arrival rate. Hysteresis: scale down only to a count that also
   meets a ``tolerance``-tighter threshold. Saturated replicas plan for served + backlog
   growth. Once two steps faster than the start-up time caught the policy (see
   :mod:`forecast`), the busiest settled window's count is held through lulls.
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
from dataclasses import replace

from wattserve.autoscale.calibration import (
    calibrate,
    first_window_correction,
    gauge_scale,
    lengths_to_plan,
)
from wattserve.autoscale.forecast import (
    drop_newest,
    late_episodes,
    learn_startup,
    little_rate,
    rate_changed,
    recent_peak,
    upper_rate,
    volatility,
)
from wattserve.autoscale.model import Decision, Reason, ScalerState, ScalingInputs
from wattserve.autoscale.observe import Observation
from wattserve.autoscale.queueing import Load, Prediction, predict, service_time
from wattserve.autoscale.sizing import margin_thresholds, smallest, stabilize


def decide(
    spec: ScalingInputs, state: ScalerState, obs: Observation | None, now: float
) -> tuple[Decision, ScalerState]:
    current = spec.current_replicas if spec.current_replicas is not None else state.replicas
    # Start-up time learned from observed readiness (the spec's cold start until then).
    unready, startup = learn_startup(state.unready, state.last_ready, spec.ready_replicas,
                                     now, state.startup_s)
    cold = spec.cold_start_s if startup is None else startup
    # Replicas added within cold start + metrics window: starting, or not yet visible in
    # the observed latency. Both count as capacity coming.
    horizon = cold + spec.metrics_window_s
    starts = tuple((t, n) for t, n in state.starts if now - t < horizon)
    starting = min(current, sum(n for t, n in starts if now - t < cold))
    unseen = min(current, sum(n for _, n in starts))
    ready = spec.ready_replicas if spec.ready_replicas is not None else current - starting

    if not _usable(obs):
        return _fail_static(state, current, starts, now)
    assert obs is not None and obs.request_rate is not None
    slo_s = spec.slo_p95_ms / 1000.0
    rate = obs.request_rate
    since = now if state.observing_since is None else state.observing_since
    # The model is fitted only on windows that hold one traffic regime: after a step the
    # window's completions are the previous regime's stragglers (a p95 of the busy period
    # read at a low rate) and its rate lags what is in flight (Little's law does not hold
    # out of steady state), so either would mis-fit the speed and tail correction.
    dt = now - state.last_time if state.last_time is not None else 0.0
    moved = rate_changed(rate, state.last_rate, dt, spec.metrics_window_s)
    steady = now if moved or state.steady_since is None else state.steady_since
    settled = now - steady >= spec.metrics_window_s
    load, lengths = lengths_to_plan(spec, state, obs, settled)
    # Nor on a window that held a backlog (requests queued at every ready replica): its
    # latencies are waits for capacity that was missing, and its rate is what the ready
    # replicas could finish, not what arrived. Fitted there, the corrections learn a
    # cold start's queue as if it were the replicas' speed (a TTFT correction of 11 s,
    # then every replica the maximum allows, on the `onoff` trace bank entries).
    if (obs.queued or 0.0) >= max(1.0, spec.saturation_queue * max(ready, 1)):
        backlog_at: float | None = now
    else:
        backlog_at = state.backlog_at
    clear = backlog_at is None or now - backlog_at >= spec.metrics_window_s
    if now - since >= spec.metrics_window_s and settled and clear:
        calibrated, speed, corr, tcorr = calibrate(spec, state, obs, load, ready)
    else:  # the windows are filling or mix two regimes: rates lag what is in flight
        calibrated, speed, corr, tcorr = (state, state.speed, state.tail_correction,
                                          state.ttft_correction)

    # Before the first fit: an observed p95 under the seed's prediction lowers it now.
    used = corr if not clear else first_window_correction(spec, calibrated, obs, load, ready,
                                                          speed, corr)
    scale = gauge_scale(calibrated)
    if scale < 1.0 and obs.in_flight is not None:
        obs = replace(obs, in_flight=obs.in_flight * scale)

    def pred(replicas: int, lam: float) -> Prediction:
        p = predict(spec.capacity, Load(lam, load.prompt_tokens, load.gen_tokens), replicas,
                    speed=speed, tail_factor=spec.tail_factor)
        return Prediction(p.p95_s * used, p.ttft_p95_s + tcorr, p.concurrency, p.utilization)

    trend = state.trend
    if state.last_rate is not None and state.last_time is not None and now > state.last_time:
        slope = (rate - state.last_rate) / (now - state.last_time)
        trend = (1.0 - spec.ewma_alpha * 2) * trend + spec.ewma_alpha * 2 * slope
    vol = volatility(state.volatility, state.last_rate, state.last_time, rate, now)
    tick = now - state.last_time if state.last_time is not None and now > state.last_time \
        else 15.0
    backlog = (obs.queued or 0.0) + (obs.in_flight or 0.0)
    growth = (backlog - state.last_backlog) / tick \
        if state.last_backlog is not None and state.last_time is not None else 0.0
    plan_rate = _plan_rate(spec, obs, load, ready, speed, slo_s, vol=vol, lead_s=cold + tick,
                           growth=growth)
    if spec.forecast and trend > 0:
        # The windowed rate lags by half a window, and new replicas take a cold start.
        plan_rate += trend * (cold + spec.metrics_window_s / 2)
    lo, hi = spec.effective_min(), spec.effective_max()
    # Headroom adapts to how often the SLO was actually missed lately (bursty traffic
    # the windowed metrics cannot see coming): 1 / violation_gain of recent ticks in
    # violation -> the widest margin; it decays back over ~1 / violation_alpha ticks.
    excess = _excess(spec, obs, slo_s)
    a = spec.violation_alpha
    # A p95 measured before replicas still starting or unseen could help is stale: it
    # neither adds to nor decays the memory of misses.
    # A miss more replicas would have prevented (the replicas were contended).
    missed = excess > 1.0 and ready > 0 and _contended(spec, obs, ready)
    violations = state.violations if unseen else (
        (1 - a) * state.violations + a * (1.0 if excess > 1.0 else 0.0))
    margin = spec.safety_margin + (spec.max_safety_margin - spec.safety_margin) * min(
        1.0, violations * spec.violation_gain)
    margin = max(spec.safety_margin, min(margin, spec.max_safety_margin))
    # Observed misses also widen the rate headroom by the same share: bursts the band did
    # not see coming are covered next time.
    plan_rate /= 1.0 - (margin - spec.safety_margin)
    # What no replica count can beat is an idle replica's latency (the "floor"). The
    # margin applies to the latency above it, the part replicas can change: near the
    # floor, a margin on the whole SLO would cost many replicas for almost no latency.
    # When the SLO sits within the tolerance of the floor, replicas buy (almost) nothing:
    # aim for the floor plus the tolerance, and report a conflict if the floor misses it.
    floor = pred(1, 0.0)
    ttft_slo = None if spec.slo_ttft_p95_ms is None else spec.slo_ttft_p95_ms / 1000.0
    unreachable = floor.p95_s > slo_s or (ttft_slo is not None and floor.ttft_p95_s > ttft_slo)
    # What replicas can change at this rate is the latency above what the most replicas
    # would give (batch fluctuations and prefill queues remain at any count), not above
    # an idle replica's: on a flat curve a margin above the idle floor is reachable only
    # at the limit. Never stricter than above the idle floor, never above the SLO.
    most = pred(hi, plan_rate) if spec.asymptote_floor else floor
    lat_thr, lat_down = margin_thresholds(slo_s, floor.p95_s, most.p95_s, margin,
                                           spec.tolerance)
    ttft_thr = ttft_down = None
    if ttft_slo is not None:
        ttft_thr, ttft_down = margin_thresholds(ttft_slo, floor.ttft_p95_s,
                                                 most.ttft_p95_s, margin, spec.tolerance)
    util_cap = spec.planned_utilization()
    r_up = smallest(pred, plan_rate, lo, hi, lat_thr, ttft_thr, util_cap)
    r_down = smallest(pred, plan_rate, lo, hi, lat_down, ttft_down,
                       util_cap * (1.0 - spec.tolerance))
    conflict = r_up is None or unreachable
    # Recurring steps faster than the lead time (see forecast.py): hold what the busiest
    # recent window needed once two such steps were missed.
    memory = min(tick, spec.metrics_window_s) / a  # that of the misses: 1 / a ticks
    # Late: missed on contended replicas while added ones are still coming, in a step
    # (at least twice the ready replicas needed), not a blip a replica more fixes.
    late = missed and unseen > 0 and (r_up or hi) >= 2 * max(ready, 1)
    episodes = late_episodes(state.late_episodes, now, late, state.scaled_down_at, memory)
    # What a settled window (one regime, not a queue draining) needed at its own rate.
    needed = (smallest(pred, rate, lo, hi, lat_thr, ttft_thr, util_cap) or hi) if settled \
        else 0
    peak, peak_since = recent_peak(state.peak_replicas, state.peak_since, needed, now, memory)
    hold = peak if len(episodes) >= 2 else lo
    if r_up is None:
        rec, reason = hi, _limit_reason(spec)
    elif current < max(r_up, hold):
        rec = max(r_up, hold)
        reason = Reason.PREDICTED_LOAD if r_up >= hold else Reason.RECURRING_BURSTS
    elif r_down is not None and current > max(r_down, hold):
        rec, reason = max(r_down, hold), Reason.PREDICTED_LOAD
    elif r_down is not None and r_down < hold <= current:
        rec, reason = current, Reason.RECURRING_BURSTS
    else:
        rec, reason = current, Reason.WITHIN_TOLERANCE
    if unreachable and r_up is not None:
        reason = Reason.UNREACHABLE

    reactive = 0
    if excess > 1.0 and ready > 0 and _contended(spec, obs, ready):
        seen = max(1, current - unseen)  # the replicas the observed p95 was measured on
        reactive = max(seen + 1, math.ceil(seen * min(excess, 2.0)))
        reactive = min(reactive, hi)
        if reactive > current:
            rec, reason = max(rec, reactive), Reason.SLO_VIOLATION
        elif reason != Reason.SLO_VIOLATION and starting > 0 and rec <= current:
            reason = Reason.WAITING_FOR_COLD_START
            rec = max(rec, current)  # do not undo replicas still warming up

    window = max(spec.scale_up_delay_s, spec.scale_down_delay_s)
    recs = (*tuple((t, r) for t, r in state.recommendations if now - t < window), (now, rec))
    desired = stabilize(spec, recs, rec, current, now, immediate_up=reason == Reason.SLO_VIOLATION)
    if rec < desired == current:
        reason = Reason.STABILIZING
    desired = min(max(desired, lo), hi)

    p_desired = pred(desired, rate)
    extra: dict[str, float] = {"speed": speed, "tailCorrection": used, "margin": margin,
                               "ttftCorrection": tcorr, "ready": float(ready),
                               "starting": float(starting), "planRate": plan_rate,
                               "startupSeconds": cold}
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
        unready = (*unready, (now, desired - current))
    elif desired < current:
        unready = drop_newest(unready, current - desired)
    msg = _message(reason, spec, obs, current, desired, ready, p_desired, jpt, plan_rate,
                   floor.p95_s)
    decision = Decision(
        desired_replicas=desired, reason=reason.value, message=msg, conflict=conflict,
        predicted_p95_s=None if math.isinf(p_desired.p95_s) else p_desired.p95_s, extra=extra,
    )
    new_state = calibrated.evolve(
        replicas=desired, recommendations=recs, starts=starts, speed=speed,
        tail_correction=corr, ttft_correction=tcorr, outage_since=None, last_rate=rate,
        last_time=now, trend=trend, violations=violations, volatility=vol, unready=unready,
        last_ready=spec.ready_replicas, startup_s=startup, observing_since=since,
        steady_since=steady, prompt_tokens=lengths[0], gen_tokens=lengths[1],
        last_backlog=backlog, backlog_at=backlog_at,
        late_episodes=episodes, peak_replicas=peak, peak_since=peak_since,
        scaled_down_at=now if desired < current else state.scaled_down_at,
    )
    return decision, new_state


def _usable(obs: Observation | None) -> bool:
    if obs is None or obs.request_rate is None:
        return False
    for value in (obs.request_rate, obs.p95_latency_s, obs.p95_ttft_s, obs.prompt_tps,
                  obs.generation_tps, obs.in_flight, obs.queued, obs.busy,
                  obs.joules_per_token):
        if value is not None and (not math.isfinite(value) or value < 0):
            return False
    return True


def _plan_rate(spec: ScalingInputs, obs: Observation, load: Load, ready: int, speed: float,
               slo_s: float, *, vol: float, lead_s: float, growth: float = 0.0) -> float:
    """Arrival rate to plan for. The windowed rate lags a rising load by up to a window,
    so the sequences in service right now, ``in_flight / service time`` (Little's law),
    replace it when they say the rate is higher (always when requests queue at every
    replica, else when significantly higher); with the rate band on, the upper edge of
    the band over the lead time (see :mod:`forecast`); queued requests add a term that
    drains them within one SLO. Saturated replicas complete only what they can, so then
    the rate that arrives is what they serve plus the growth of the backlog per second
    (``growth``: queued + in flight, since the last tick)."""
    queued = obs.queued or 0.0
    rate = load.rate
    if ready > 0 and obs.in_flight is not None:
        per_replica = obs.in_flight / ready
        service = service_time(spec.capacity, load, per_replica, speed)
        if queued >= max(1.0, spec.saturation_queue * ready):
            rate = max(rate, obs.in_flight / service) + max(growth, 0.0)
        elif spec.rate_band:
            rate = little_rate(rate, obs.in_flight, service)
    if spec.rate_band:
        rate = upper_rate(rate, spec.metrics_window_s, vol, 0.0, lead_s, spec.band_z)
    return rate + queued / slo_s


def _excess(spec: ScalingInputs, obs: Observation, slo_s: float) -> float:
    """Observed p95 over the SLO (latency or TTFT, whichever is worse); > 1 = violated."""
    worst = 0.0
    if obs.p95_latency_s is not None:
        worst = obs.p95_latency_s / slo_s
    if obs.p95_ttft_s is not None and spec.slo_ttft_p95_ms:
        worst = max(worst, obs.p95_ttft_s / (spec.slo_ttft_p95_ms / 1000.0))
    return worst


def _contended(spec: ScalingInputs, obs: Observation, ready: int) -> bool:
    """Evidence that replicas are short, not that requests are long: a queue, busy
    one-at-a-time replicas, or batches big enough to slow each stream down."""
    if (obs.queued or 0.0) >= 1.0:
        return True
    per_replica = (obs.in_flight or 0.0) / ready
    cap = spec.capacity
    if cap.max_concurrency <= 1:
        return per_replica >= 0.5
    slowdown = cap.per_stream_tps(per_replica) / cap.per_stream_tps(1)
    return slowdown < 1.0 - spec.tolerance


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
    ready: int, p: Prediction, jpt: float | None, plan_rate: float, floor_s: float,
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
        Reason.RECURRING_BURSTS: ("; steps faster than the start-up time recurred, so the "
                                  "count the busiest recent window needed is held"),
        Reason.SLO_VIOLATION: "; observed p95 over the SLO, scaling up at once",
        Reason.UNREACHABLE: ("; even an idle replica is predicted to miss the SLO "
                             f"(p95 {floor_s * 1000:.0f}ms), so more replicas would not help"),
    }.get(reason, "")
    return head + tail + "."
