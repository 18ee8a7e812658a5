"""Scale to zero's clock, one tick at a time (pure): the operator's autoscaler tick
(``reconcile/zero.py``) and the simulator (``simulate/wattserve_policy.py``) both step it.

* **Idle** = over the PromQL window: no request served (or no request counter yet), nothing
  in flight, nothing queued, positively known (:func:`is_idle`). No data is not idle.
* The clock starts a window before the first idle tick (idleness is known only to the
  window's resolution) and never before a wake-up.
* An **idle gap** ends when traffic is seen again (:func:`is_busy`) or when a request woke
  the model after the clock started (at the wake, not at the tick); it is remembered with
  :func:`wattserve.autoscale.idle.remember_gap`. A metrics outage ends no gap: it only
  stops the clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from wattserve.autoscale.idle import remember_gap
from wattserve.autoscale.model import ScalingInputs
from wattserve.autoscale.observe import Observation
from wattserve.autoscale.queueing import Load, predict

ACTIVE_RATE_ALPHA = 0.3  # EWMA weight of a tick's non-zero request rate


def is_idle(obs: Observation | None) -> bool:
    """Nothing served, running or queued over the window, positively known.

    A replica that never served a request exports no request counter yet (the series is
    born with the first request), so no request rate but an in-flight gauge of 0 (the
    pods are scraped, Prometheus answers) is idle too. No in-flight figure: not known.
    """
    if obs is None or obs.in_flight is None or obs.in_flight != 0 or (obs.queued or 0) != 0:
        return False
    return obs.request_rate is None or obs.request_rate == 0


def is_busy(obs: Observation | None) -> bool:
    """Something served, running or queued over the window, positively known."""
    return obs is not None and any((v or 0) > 0 for v in (obs.request_rate, obs.in_flight,
                                                          obs.queued))


def active_rate_after(previous: float | None, rate: float) -> float:
    """The request rate while in use after a tick that served ``rate`` > 0 requests/s: an
    EWMA of the non-zero rates (the first one is taken as it is)."""
    prev = rate if previous is None else previous
    return (1.0 - ACTIVE_RATE_ALPHA) * prev + ACTIVE_RATE_ALPHA * rate


def idle_floor_s(spec: ScalingInputs) -> float:
    """An idle replica's own p95 latency for a typical request (0 when not finite)."""
    load = Load(0.0, spec.expected_prompt_tokens, spec.expected_gen_tokens)
    floor = predict(spec.capacity, load, 1, tail_factor=spec.tail_factor).p95_s
    return floor if math.isfinite(floor) else 0.0


@dataclass(frozen=True)
class IdleClock:
    since: float | None  # idle since (None: in use, or not known to be idle)
    gaps: tuple[float, ...]  # the recent idle gaps, seconds
    gap_ended: bool = False  # an idle gap ended at this tick (a new one starts later)


def advance(since: float | None, gaps: tuple[float, ...], obs: Observation | None, *,
            now: float, window_s: float, woken: float | None) -> IdleClock:
    """One tick of the idle clock of a model that has replicas (see the module docstring).
    ``woken``: when a request last woke it from zero (None: never)."""
    woke = woken is not None and since is not None and woken > since
    if since is not None and (is_busy(obs) or woke):
        end = woken if woke and woken is not None else now
        return IdleClock(None, remember_gap(gaps, end - since), gap_ended=True)
    if not is_idle(obs):
        return IdleClock(None, gaps)
    if since is None:
        since = now - window_s
        if woken is not None:
            since = max(since, woken)
    return IdleClock(since, gaps)
