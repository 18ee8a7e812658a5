"""Before the first fit, an observed p95 under the seed's prediction lowers the tail
correction at once: a new deployment is not scaled to its maximum on its first requests
by a seed that predicts twice the latency the replica shows (SmolLM2 on the real node:
3.3 s predicted at 13 % utilization, 1.4 s observed, and 1 -> 2 replicas at 0.16 req/s)."""

from __future__ import annotations

from dataclasses import replace

from wattserve.autoscale.calibration import first_window_correction
from wattserve.autoscale.model import ScalerState
from wattserve.autoscale.observe import Observation
from wattserve.autoscale.policy import decide
from wattserve.autoscale.queueing import Load

from tests.unit.test_autoscale_busy_average import SPEC

# One 1-slot replica of 1.1 s per request (100 + 100 tokens), tail factor 2: the seed
# predicts 2.2 s for an idle replica and ~3.9 s at 0.16 req/s, over a 3 s SLO.
NEW = replace(SPEC, slo_p95_ms=3000, max_replicas=2, current_replicas=1, ready_replicas=1)


def _first_requests(p95_s: float) -> Observation:
    return Observation(request_rate=0.16, prompt_tps=16.0, generation_tps=16.0,
                       p95_latency_s=p95_s, in_flight=0.0, queued=0.0, busy=0.2)


def test_a_fast_replica_is_not_scaled_up_on_the_seed_in_its_first_window() -> None:
    decision, state = decide(NEW, ScalerState(replicas=1), _first_requests(1.4), 6.0)
    assert decision.desired_replicas == 1
    assert decision.extra["tailCorrection"] < 1.0
    assert state.tail_correction == 1.0  # used for this decision, not stored: no fit yet


def test_an_observed_p95_over_the_seed_does_not_raise_it() -> None:
    # The seed decides as before (here: the SLO needs more than the 2 replicas allowed).
    decision, _ = decide(NEW, ScalerState(replicas=1), _first_requests(4.5), 6.0)
    assert decision.extra["tailCorrection"] == 1.0
    assert decision.desired_replicas == 2


def test_after_the_first_fit_the_fitted_correction_decides() -> None:
    load = Load(0.16, 100.0, 100.0)
    fitted = ScalerState(replicas=1, work_ewma=0.1, busy_ewma=0.1, tail_correction=0.8)
    assert first_window_correction(NEW, fitted, _first_requests(0.5), load, 1, 1.0,
                                   0.8) == 0.8
    fresh = ScalerState(replicas=1)
    lowered = first_window_correction(NEW, fresh, _first_requests(0.5), load, 1, 1.0, 1.0)
    assert lowered == 0.5  # never below the fit's own lower bound
    assert first_window_correction(NEW, fresh, _first_requests(1.4), load, 0, 1.0,
                                   1.0) == 1.0  # nothing ready: nothing observed on it
