"""Property tests of the policy (hypothesis) and of the queueing model."""

from __future__ import annotations

import math
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st
from wattserve.autoscale.model import ScalerState, ScalingInputs
from wattserve.autoscale.observe import Observation
from wattserve.autoscale.policy import decide
from wattserve.autoscale.queueing import Capacity, Load, erlang_c, predict

GPU = Capacity.from_rates(40.0, 3000.0, 128, 8000.0)
CPU = Capacity.from_rates(100.0, 100.0, 1, 1000.0)
caps = st.sampled_from([GPU, CPU])
rates = st.floats(min_value=0.0, max_value=200.0, allow_nan=False)
tokens = st.floats(min_value=1.0, max_value=2000.0, allow_nan=False)
replicas = st.integers(min_value=1, max_value=30)


def spec_for(cap: Capacity, max_replicas: int = 25) -> ScalingInputs:
    return ScalingInputs(slo_p95_ms=20000, capacity=cap, max_replicas=max_replicas,
                         cold_start_s=60.0)


def obs(rate: float, prompt: float, gen: float) -> Observation:
    return Observation(request_rate=rate, prompt_tps=rate * prompt, generation_tps=rate * gen)


@settings(max_examples=150, deadline=None)
@given(caps, rates, rates, tokens, tokens, replicas)
def test_more_load_never_gets_fewer_replicas(cap: Capacity, r1: float, r2: float,
                                             prompt: float, gen: float, current: int) -> None:
    lo, hi = sorted((r1, r2))
    spec = spec_for(cap)
    state = ScalerState(replicas=current)
    d_lo, _ = decide(spec, state, obs(lo, prompt, gen), 100.0)
    d_hi, _ = decide(spec, state, obs(hi, prompt, gen), 100.0)
    assert d_hi.desired_replicas >= d_lo.desired_replicas


@settings(max_examples=150, deadline=None)
@given(caps, rates, tokens, tokens, replicas, st.integers(min_value=1, max_value=12),
       st.floats(min_value=0.0, max_value=100.0), st.floats(min_value=0.0, max_value=50.0))
def test_never_above_max_replicas(cap: Capacity, rate: float, prompt: float, gen: float,
                                  current: int, max_replicas: int, p95: float,
                                  queued: float) -> None:
    spec = spec_for(cap, max_replicas)
    o = replace(obs(rate, prompt, gen), p95_latency_s=p95, queued=queued, in_flight=queued)
    state = ScalerState(replicas=min(current, max_replicas))
    for t in range(3):
        d, state = decide(spec, state, o, 15.0 * t)
        assert 1 <= d.desired_replicas <= max_replicas


@settings(max_examples=100, deadline=None)
@given(replicas, st.sampled_from([None, Observation(), Observation(request_rate=math.nan),
                                  Observation(request_rate=-1.0),
                                  Observation(request_rate=3.0, p95_latency_s=math.inf)]))
def test_fail_static_keeps_replicas(current: int, bad: Observation | None) -> None:
    d, state = decide(spec_for(GPU, 40), ScalerState(replicas=current), bad, 5.0)
    assert d.desired_replicas == current and state.replicas == current
    assert d.reason == "MetricsUnavailable"


@settings(max_examples=100, deadline=None)
@given(caps, st.floats(min_value=0.01, max_value=50.0), tokens, tokens, replicas)
def test_predicted_p95_never_rises_with_more_replicas(cap: Capacity, rate: float,
                                                      prompt: float, gen: float, n: int) -> None:
    load = Load(rate, prompt, gen)
    assert predict(cap, load, n + 1).p95_s <= predict(cap, load, n).p95_s + 1e-9


def test_erlang_c_matches_known_values() -> None:
    assert erlang_c(1, 0.5) == 0.5  # M/M/1: P(wait) = rho
    assert math.isclose(erlang_c(2, 1.0), 1 / 3)
    assert erlang_c(3, 3.5) == 1.0  # overloaded


def test_saturated_replicas_predict_unbounded_latency() -> None:
    # 100 tok/s, 100-token requests, 2 replicas: at most ~1.8 req/s.
    assert math.isinf(predict(CPU, Load(2.0, 100, 100), 2).p95_s)
    assert math.isfinite(predict(CPU, Load(1.0, 100, 100), 2).p95_s)


def test_batched_replicas_slow_each_stream_as_concurrency_grows() -> None:
    light = predict(GPU, Load(0.1, 100, 200), 1)
    heavy = predict(GPU, Load(8.0, 100, 200), 1)
    assert heavy.concurrency > light.concurrency
    assert heavy.p95_s > light.p95_s
    assert GPU.per_stream_tps(64) < GPU.per_stream_tps(1) == 40.0


def test_batched_replicas_queue_for_prefill() -> None:
    # Long prompts on one batched replica: slots are free, but prefill is one at a time.
    light = predict(GPU, Load(0.5, 4000, 50), 1)  # prefill busy 25 %
    heavy = predict(GPU, Load(1.8, 4000, 50), 1)  # prefill busy 90 %
    assert heavy.ttft_p95_s > 3 * light.ttft_p95_s
    assert math.isinf(predict(GPU, Load(2.5, 4000, 50), 1).ttft_p95_s)  # > prefill capacity
