"""The model is not fitted on windows that held a backlog: requests queued at every ready
replica wait for capacity that was missing (a cold start after a step), so their latency
says nothing about the replicas' speed or the TTFT the model should predict."""

from __future__ import annotations

from dataclasses import replace

from wattserve.autoscale.model import ScalerState
from wattserve.autoscale.observe import Observation
from wattserve.autoscale.policy import decide

from tests.unit.test_autoscale_busy_average import SPEC

TTFT_SPEC = replace(SPEC, slo_ttft_p95_ms=2000, current_replicas=8, ready_replicas=8)


def _obs(queued: float, ttft: float) -> Observation:
    return Observation(request_rate=4.0, prompt_tps=400.0, generation_tps=400.0,
                       p95_latency_s=1.2 + ttft, p95_ttft_s=ttft, in_flight=8.0,
                       busy=4.4, queued=queued)


def _run(state: ScalerState, ticks: range, queued: float, ttft: float) -> ScalerState:
    for k in ticks:
        _, state = decide(TTFT_SPEC, state, _obs(queued, ttft), 15.0 * k)
    return state


def test_a_backlog_does_not_teach_the_model_its_queue() -> None:
    fitted = _run(ScalerState(replicas=8), range(20), 0.0, 0.3)
    before = fitted.ttft_correction
    # A backlog of 600 requests, TTFTs of 100 s: the replicas were missing, not slow.
    held = _run(fitted, range(20, 30), 600.0, 100.0)
    assert held.ttft_correction == before
    assert (held.speed, held.tail_correction) == (fitted.speed, fitted.tail_correction)
    # Within a window after the queue drained the windows still hold its waits ...
    after = _run(held, range(30, 33), 0.0, 100.0)
    assert after.ttft_correction == before
    # ... then the model is fitted again.
    later = _run(after, range(34, 60), 0.0, 0.3)
    assert later.backlog_at == 15.0 * 29
    assert abs(later.ttft_correction - before) < 0.1


def test_the_backlog_memory_survives_a_restart() -> None:
    state = _run(ScalerState(replicas=8), range(3), 600.0, 100.0)
    assert ScalerState.from_dict(state.to_dict()).backlog_at == state.backlog_at == 30.0
