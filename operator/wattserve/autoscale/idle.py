"""How long an idle replica stays warm before scaling to zero: from the cost of waking (pure).

A replica that has served nothing for ``t`` seconds can be kept (paying its idle cost every
second) or removed (paying, at the next request, one *wake*: the cold start's replica time
and energy, plus the SLO penalty of the requests that wait through it). Not knowing when
the next request comes, the classic answer (ski rental, break-even) is to keep the replica
exactly until the idle cost paid equals the cost of one wake:

    timeout = cost of one wake / idle cost per second

which never costs more than twice the best choice made in hindsight, whatever the traffic.
Per objective (``cost``: dollars, ``energy``/``carbon``: joules — carbon is joules times a
constant of the pool, so the same ratio — ``balanced``: the mean of both):

* dollars: a starting replica is billed like an idle one, so the wake costs
  ``cold_start_s`` replica-seconds;
* joules: a starting replica draws ``wake_watts`` (loading weights: default the pool's
  max power) for ``cold_start_s``, against ``idle_watts`` when kept, so the wake costs
  ``cold_start_s x wake_watts / idle_watts`` idle-seconds;
* SLO penalty: a cold start longer than the SLO's slack (SLO minus an idle replica's
  latency) makes the requests that wait through it miss the SLO. Expected misses per wake
  = 1 (the waking request) + ``active_rate x cold_start_s`` (those arriving meanwhile);
  each is priced ``miss_penalty_s`` replica-seconds (the knob of how much an SLO miss is
  worth; 300, five replica-minutes, by default). A cold start within the slack costs no
  penalty. At 60 (before), a 15 s CPU cold start made a wake cheaper than waiting out the
  three-minute gaps of a model in use, so it went cold between requests: 35-55 % SLO
  attainment on the simulator's ``sparse`` family against 76-80 % with a 300 s timeout.

The result is clamped to ``[min_timeout_s, max_timeout_s]`` (at least a few metric windows:
idleness is only known to the resolution of the Prometheus window). ``override_s``
(``spec.scaling.idleTimeoutSeconds``) replaces the computed value but the reason still
states what the cost model would have chosen.

Cold-start time is seeded from the placement (the pool's ``tuning.coldStartSeconds`` or the
engine default) and learned from observed wake-to-Ready times with :func:`learn_cold_start`.

**Learned from the model's own gaps.** Break-even assumes nothing about when the next
request comes. Once the model has shown ``MIN_GAPS`` idle gaps (each from going idle to
the next request, at zero or not; :func:`remember_gap` keeps the last ``MAX_GAPS``), the
timeout is the one at or above break-even that would have cost least over those gaps
(:func:`learned_timeout`):

    cost(T) = sum over gaps g of  min(g, T)  +  wake x [g > T]

— idle time paid while waiting, plus one wake for each gap that outlasted the wait. A
model used at a steady pace a little slower than break-even (a job every seven minutes,
a wake worth six) is kept warm through its gaps instead of going cold before every
request; hours of silence are not waited out. Learning only ever lengthens break-even:
below it, the hindsight choice traded SLO misses for replica time on the simulator's
``sparse`` family (Poisson gaps have no memory to learn: 81.5 % attainment at 1.91x the
oracle's replica-hours against 87.4 % at 2.18x for break-even alone), and the SLO comes
first. It never picks a timeout between two observed gaps (waiting longer than the shorter
one only pays more), and a dearer wake never shortens it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from wattserve.autoscale.model import ScalingInputs

GOALS: Final = ("cost", "energy", "carbon", "balanced")
DEFAULT_MISS_PENALTY_S: Final = 300.0
DEFAULT_MIN_TIMEOUT_S: Final = 120.0
DEFAULT_MAX_TIMEOUT_S: Final = 86400.0
COLD_START_ALPHA: Final = 0.3
MIN_GAPS: Final = 6  # idle gaps seen before the timeout is learned from them
MAX_GAPS: Final = 24  # the most recent gaps kept (the idle memory stores them)
GAP_MARGIN_S: Final = 30.0  # a gap's resolution: one autoscaler tick and one scrape


@dataclass(frozen=True)
class IdleInputs:
    """What a wake costs and what an idle second costs, for one model on one pool."""

    cold_start_s: float  # measured (learned) or seeded time from scale-up to Ready
    idle_watts: float  # a ready replica's draw with no requests
    wake_watts: float | None = None  # draw while starting (None: = idle_watts)
    usd_per_hour: float = 0.0  # per replica, billed while starting and while idle
    slo_p95_s: float = math.inf  # latency SLO (or TTFT SLO, the tighter one)
    floor_s: float = 0.0  # an idle replica's own latency for a typical request
    active_rate: float = 0.0  # req/s while the model is in use (recent non-zero rate)
    miss_penalty_s: float = DEFAULT_MISS_PENALTY_S  # replica-seconds one SLO miss is worth
    goal: str = "cost"
    min_timeout_s: float = DEFAULT_MIN_TIMEOUT_S
    max_timeout_s: float = DEFAULT_MAX_TIMEOUT_S
    override_s: float | None = None  # spec.scaling.idleTimeoutSeconds
    gaps: tuple[float, ...] = ()  # recent idle gaps, s (going idle -> next request)


@dataclass(frozen=True)
class IdleDecision:
    seconds: float  # scale to zero after this long without a served request
    reason: str  # CamelCase: BreakEven | LearnedGaps | Override | ClampedToMinimum |
    #              ClampedToMaximum
    message: str  # one sentence with the numbers
    wake_cost_s: float  # one wake, in idle replica-seconds (before clamping)
    misses_per_wake: float  # expected SLO misses caused by one cold start


def inputs_for(spec: ScalingInputs, *, cold_start_s: float | None = None,
               active_rate: float = 0.0, gaps: tuple[float, ...] = (), floor_s: float = 0.0,
               override_s: float | None = None) -> IdleInputs:
    """What one wake and one idle second cost for ``spec``'s model on its pool: seeded from
    the placement (cold start, pool power and price), with what was learned (a measured
    cold start, the rate while in use, the recent idle gaps). The operator and the
    simulator both build their inputs here."""
    slo = spec.slo_p95_ms / 1000.0
    if spec.slo_ttft_p95_ms is not None:
        slo = min(slo, spec.slo_ttft_p95_ms / 1000.0)
    return IdleInputs(
        cold_start_s=spec.cold_start_s if cold_start_s is None else cold_start_s,
        idle_watts=spec.idle_watts_per_replica,
        wake_watts=max(spec.max_watts_per_replica, spec.idle_watts_per_replica),
        usd_per_hour=spec.usd_per_hour_per_replica, slo_p95_s=slo, floor_s=floor_s,
        active_rate=active_rate, goal=spec.goal.value, override_s=override_s, gaps=gaps)


def _finite(value: float, name: str, minimum: float = 0.0) -> float:
    if not math.isfinite(value) or value < minimum:
        raise ValueError(f"{name} must be a finite number >= {minimum:g}, got {value!r}")
    return value


def misses_per_wake(inputs: IdleInputs) -> float:
    """Requests expected to miss the SLO because of one cold start (0 if it fits the slack)."""
    slack = inputs.slo_p95_s - inputs.floor_s
    if inputs.cold_start_s <= slack:
        return 0.0
    return 1.0 + max(inputs.active_rate, 0.0) * inputs.cold_start_s


def wake_cost_seconds(inputs: IdleInputs) -> float:
    """One wake in idle replica-seconds for the objective (before clamping)."""
    cold = inputs.cold_start_s
    penalty = misses_per_wake(inputs) * inputs.miss_penalty_s
    usd = cold + penalty
    wake_w = inputs.idle_watts if inputs.wake_watts is None else inputs.wake_watts
    energy = (cold * wake_w / inputs.idle_watts if inputs.idle_watts > 0 else cold) + penalty
    if inputs.goal == "cost":
        return usd
    if inputs.goal in ("energy", "carbon"):
        return energy
    return (usd + energy) / 2.0


def idle_timeout(inputs: IdleInputs) -> IdleDecision:
    """The idle timeout for ``inputs`` with the reason (see the module docstring).

    Monotonic: a longer or hungrier cold start, a higher miss penalty or a busier model
    never shortens it; a hungrier idle replica never lengthens it.
    """
    _finite(inputs.cold_start_s, "cold_start_s")
    _finite(inputs.idle_watts, "idle_watts")
    _finite(inputs.miss_penalty_s, "miss_penalty_s")
    _finite(inputs.active_rate, "active_rate")
    _finite(inputs.min_timeout_s, "min_timeout_s")
    if inputs.wake_watts is not None:
        _finite(inputs.wake_watts, "wake_watts")
    if inputs.goal not in GOALS:
        raise ValueError(f"goal must be one of {', '.join(GOALS)}, got {inputs.goal!r}")
    if not inputs.max_timeout_s >= inputs.min_timeout_s:
        raise ValueError("max_timeout_s must be >= min_timeout_s")
    misses = misses_per_wake(inputs)
    wake = wake_cost_seconds(inputs)
    clamped = min(max(wake, inputs.min_timeout_s), inputs.max_timeout_s)
    why = (f"one wake costs {wake:.0f} idle replica-seconds ({inputs.goal}): cold start "
           f"{inputs.cold_start_s:.1f}s")
    if inputs.goal != "cost":
        wake_w = inputs.idle_watts if inputs.wake_watts is None else inputs.wake_watts
        why += f" at {wake_w:.0f}W vs {inputs.idle_watts:.0f}W idle"
    if misses > 0:
        why += (f" + {misses:.2g} SLO misses x {inputs.miss_penalty_s:.0f}s (the cold start "
                f"exceeds the SLO slack of {max(inputs.slo_p95_s - inputs.floor_s, 0):.2f}s)")
    else:
        why += " (within the SLO slack: no SLO penalty)"
    if inputs.override_s is not None:
        _finite(inputs.override_s, "override_s")
        return IdleDecision(inputs.override_s, "Override",
                            f"idle timeout {inputs.override_s:.0f}s from "
                            f"spec.scaling.idleTimeoutSeconds (the cost model says "
                            f"{clamped:.0f}s: {why})", wake, misses)
    learned = learned_timeout(inputs.gaps, wake, clamped, inputs.max_timeout_s)
    if learned is not None and learned > clamped:
        kept = sum(1 for g in inputs.gaps if g <= learned)
        return IdleDecision(learned, "LearnedGaps",
                            f"idle timeout {learned:.0f}s: over the last {len(inputs.gaps)} "
                            f"idle gaps (median {_median(inputs.gaps):.0f}s, longest "
                            f"{max(inputs.gaps):.0f}s) it would have cost least, keeping "
                            f"{kept} warm and waking {len(inputs.gaps) - kept}; {why}",
                            wake, misses)
    if wake < inputs.min_timeout_s:
        reason = "ClampedToMinimum"
        tail = f"; raised to the {inputs.min_timeout_s:.0f}s minimum"
    elif wake > inputs.max_timeout_s:
        reason = "ClampedToMaximum"
        tail = f"; capped at the {inputs.max_timeout_s:.0f}s maximum"
    else:
        reason, tail = "BreakEven", ""
    return IdleDecision(clamped, reason,
                        f"idle timeout {clamped:.0f}s: keep a replica warm only while its "
                        f"idle cost stays below one wake; {why}{tail}", wake, misses)


def _median(values: tuple[float, ...]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2.0


def learned_timeout(gaps: tuple[float, ...], wake_s: float, lo: float, hi: float,
                    margin_s: float = GAP_MARGIN_S) -> float | None:
    """The timeout in ``[lo, hi]`` that would have cost least over ``gaps`` (see the module
    docstring); None with fewer than ``MIN_GAPS`` usable gaps. Ties go to the shorter.

    A gap is known only to a tick and a scrape (it ends when a tick sees traffic again),
    so a timeout chosen to wait one out waits ``margin_s`` longer than it measured."""
    seen = [g for g in gaps if math.isfinite(g) and g >= 0]
    if len(seen) < MIN_GAPS:
        return None
    candidates = sorted({lo} | {min(g + margin_s, hi) for g in seen if g + margin_s > lo})
    best, best_cost = lo, math.inf
    for t in candidates:
        cost = sum(min(g, t) + (wake_s if g > t else 0.0) for g in seen)
        if cost < best_cost - 1e-9:
            best, best_cost = t, cost
    return best


def remember_gap(gaps: tuple[float, ...], gap_s: float, keep: int = MAX_GAPS
                 ) -> tuple[float, ...]:
    """``gaps`` with one more idle gap (rounded to 0.1 s), the last ``keep`` only; a gap
    that is not a finite non-negative number is not remembered."""
    if not math.isfinite(gap_s) or gap_s < 0:
        return gaps[-keep:]
    return (*gaps, round(gap_s, 1))[-keep:]


def learn_cold_start(previous: float | None, observed_s: float,
                     alpha: float = COLD_START_ALPHA) -> float:
    """EWMA of observed wake-to-Ready times (the first observation replaces the seed)."""
    _finite(observed_s, "observed_s")
    if previous is None or not math.isfinite(previous):
        return observed_s
    return (1.0 - alpha) * previous + alpha * observed_s
