"""Biases the bank exposed in the policy's inputs (issue 13): the band's volatility
counting the window's own Poisson noise as drift, the Little's-law speed reading a queue
in front of prefill as a slower replica, and a scale-down while the rate still rises."""

from __future__ import annotations

import math
import random
from dataclasses import replace

import pytest
from wattserve.autoscale.calibration import calibrate
from wattserve.autoscale.forecast import poisson_rise_variance, upper_rate, volatility
from wattserve.autoscale.model import ScalerState, ScalingInputs
from wattserve.autoscale.observe import Observation
from wattserve.autoscale.policy import decide
from wattserve.autoscale.queueing import Capacity, Load, prefill_wait, service_time

GPU = Capacity.from_rates(40.0, 1200.0, 64, 8000.0)


def _windowed_rates(rate: float, window_s: float, tick_s: float, ticks: int,
                    seed: int) -> list[float]:
    """What a ``window_s`` rate() of a constant Poisson stream reads every ``tick_s``."""
    rng = random.Random(seed)
    t, arrivals = 0.0, []
    end = window_s + tick_s * ticks
    while t < end:
        t += rng.expovariate(rate)
        arrivals.append(t)
    return [sum(1 for a in arrivals if now - window_s <= a < now) / window_s
            for now in (window_s + tick_s * k for k in range(ticks))]


def test_the_band_counts_the_windows_poisson_noise_once() -> None:
    rate, window, tick, lead = 20.0, 60.0, 15.0, 195.0
    seen = _windowed_rates(rate, window, tick, 400, seed=3)
    vol = 0.0
    for k in range(1, len(seen)):
        vol = volatility(vol, seen[k - 1], tick * (k - 1), seen[k], tick * k)
    # On a constant rate the volatility is (about) the window's own sampling noise ...
    assert vol == pytest.approx(poisson_rise_variance(rate, window), rel=0.5)
    poisson = rate + 1.645 * math.sqrt(rate / window)
    gross = upper_rate(rate, window, vol, 0.0, lead, net_of_noise=False)
    net = upper_rate(rate, window, vol, 0.0, lead)
    # ... which the band already holds as r / W: counted again as drift over a GPU lead it
    # adds ~10 % headroom to a rate that does not move.
    assert gross > rate * 1.08
    assert net < poisson + 0.5 * (gross - poisson)


def test_a_queue_in_front_of_prefill_is_not_read_as_a_slower_replica() -> None:
    # Long prompts (4k tokens at 8k tokens/s) at 1.6 req/s per replica: prefill is 80 %
    # busy, so prompts wait for it. A replica exactly as fast as the seeded model has
    # rate x (service + prefill wait) in flight (Little's law).
    spec = ScalingInputs(slo_p95_ms=60000, capacity=GPU, max_replicas=16,
                         expected_prompt_tokens=4000, expected_gen_tokens=200)
    load = Load(3.2, 4000.0, 200.0)
    ready = 2
    wait = prefill_wait(GPU, load, load.rate / ready)
    assert wait > 0.5 * 4000 / 8000  # the queue is a sizeable share of the service
    in_flight = 1.0
    for _ in range(50):  # sequences per replica n = rate / R x (service(n) + wait)
        in_flight = load.rate * (service_time(GPU, load, in_flight / ready, 1.0) + wait)
    seen = Observation(request_rate=load.rate, prompt_tps=4000 * load.rate,
                       generation_tps=200 * load.rate, in_flight=in_flight)
    learned = {}
    for counted in (True, False):
        s, state = replace(spec, calibrate_prefill_wait=counted), ScalerState(replicas=ready)
        for _ in range(40):
            state, speed, _, _ = calibrate(s, state, seen, load, ready)
            state = state.evolve(speed=speed)
        learned[counted] = speed
    assert learned[True] == pytest.approx(1.0, rel=0.1)
    assert learned[False] < 0.85  # the wait read as slowness (then counted twice)


def test_a_rising_rate_is_not_scaled_down_within_the_start_up_time() -> None:
    # 10 replicas on GPUs with a 180 s start-up; the rate climbs 0.1 req/s per 15 s tick
    # from 2 req/s. What it reaches within a start-up time must keep its replicas.
    spec = ScalingInputs(slo_p95_ms=12000, capacity=GPU, max_replicas=24,
                         cold_start_s=180.0, scale_down_delay_s=0.0,
                         expected_prompt_tokens=512, expected_gen_tokens=192,
                         target_utilization=0.7, current_replicas=10, ready_replicas=10)
    desired = {}
    for hold in (True, False):
        s, state = replace(spec, trend_holds_scale_down=hold), ScalerState(replicas=10)
        for k in range(12):
            rate = 2.0 + 0.1 * max(0, k - 6)
            seen = Observation(request_rate=rate, prompt_tps=512 * rate,
                               generation_tps=192 * rate, in_flight=rate * 5.0)
            d, state = decide(s, state, seen, 15.0 * k)
        desired[hold] = d.desired_replicas
        assert state.trend > 0.0
    assert desired[True] > desired[False]
