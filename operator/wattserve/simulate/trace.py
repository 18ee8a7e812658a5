"""Request traces: the request type, bounds, a seeded bursty generator, rate and length
helpers. Trace files are read by :mod:`wattserve.simulate.trace_files`."""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from dataclasses import dataclass

# Bounds that keep one simulation within minutes and a few GB, whatever the input says.
MAX_SPAN_S = 31 * 24 * 3600.0  # a month of trace (after rate scaling)
MAX_REQUESTS = 2_000_000
MAX_TOKENS = 1_000_000  # per request, prompt or output
MAX_RATE = 10_000.0  # generated requests/s (mean)


def finite_positive(name: str, value: float, upper: float) -> None:
    if not (math.isfinite(value) and 0 < value <= upper):
        raise ValueError(f"{name} must be > 0 and <= {upper:g}, got {value}")


@dataclass(frozen=True)
class TraceRequest:
    arrival_s: float  # seconds from the start of the trace
    prompt_tokens: int
    gen_tokens: int


@dataclass(frozen=True)
class ContextFit:
    """A trace as a server with this context length would take it."""

    trace: list[TraceRequest]
    refused: int  # prompts that leave no room to generate: the server answers 400
    cut: int  # outputs stopped where the context ends


def fit_context(trace: Iterable[TraceRequest], context_tokens: int) -> ContextFit:
    """Leave out the requests whose prompt fills the model's context (vLLM and llama.cpp
    refuse them) and cut the others' outputs where the context ends (generation stops
    there), rather than timing work no server would do."""
    kept: list[TraceRequest] = []
    refused = cut = 0
    for r in trace:
        room = context_tokens - r.prompt_tokens
        if room < 1:
            refused += 1
        elif r.gen_tokens > room:
            cut += 1
            kept.append(TraceRequest(r.arrival_s, r.prompt_tokens, room))
        else:
            kept.append(r)
    return ContextFit(kept, refused, cut)


def generate_bursty(
    *, seed: int, hours: float, mean_rate: float, prompt_mean: float = 512.0,
    gen_mean: float = 128.0, diurnal_amplitude: float = 0.6, burst_every_s: float = 900.0,
    burst_factor: float = 3.0, burst_len_s: float = 120.0, burst_ramp_s: float = 30.0,
    max_tokens: int = 4096,
) -> list[TraceRequest]:
    """A seeded non-homogeneous Poisson trace: a diurnal cycle compressed into ``hours``
    (one period, trough at the start), bursts at exponentially spaced times that ramp up
    to ``burst_factor`` x the rate over ``burst_ramp_s``, hold, and ramp down, and
    log-normal (heavy-tailed, sigma 1) token lengths with the given means."""
    finite_positive("hours", hours, MAX_SPAN_S / 3600.0)
    finite_positive("rate", mean_rate, MAX_RATE)
    finite_positive("prompt", prompt_mean, MAX_TOKENS)
    finite_positive("gen", gen_mean, MAX_TOKENS)
    if not (math.isfinite(burst_factor) and 1.0 <= burst_factor <= 100.0):
        raise ValueError(f"burst must be 1..100, got {burst_factor}")
    if hours * 3600.0 * mean_rate > MAX_REQUESTS:
        raise ValueError(f"hours x rate would make more than {MAX_REQUESTS} requests")
    rng = random.Random(seed)
    horizon = hours * 3600.0
    bursts: list[tuple[float, float]] = []
    t = rng.expovariate(1.0 / burst_every_s)
    while t < horizon:
        bursts.append((t, t + rng.uniform(0.5, 1.5) * burst_len_s))
        t += rng.expovariate(1.0 / burst_every_s)

    def rate_at(x: float) -> float:
        phase = 2 * math.pi * x / horizon
        r = mean_rate * (1.0 - diurnal_amplitude * math.cos(phase))
        for a, b in bursts:
            if a <= x < b:
                ramp = min(1.0, (x - a) / burst_ramp_s, (b - x) / burst_ramp_s) \
                    if burst_ramp_s > 0 else 1.0
                return r * (1.0 + (burst_factor - 1.0) * ramp)
        return r

    peak = mean_rate * (1.0 + diurnal_amplitude) * burst_factor
    sigma = 1.0  # log-normal shape: p99/median ~= 10
    out: list[TraceRequest] = []
    t = 0.0
    while True:
        t += rng.expovariate(peak)  # thinning (Lewis-Shedler)
        if t >= horizon:
            break
        if rng.random() * peak <= rate_at(t):
            out.append(TraceRequest(t, _lognormal(rng, prompt_mean, sigma, max_tokens),
                                    _lognormal(rng, gen_mean, sigma, max_tokens)))
    return out


def _lognormal(rng: random.Random, mean: float, sigma: float, cap: int) -> int:
    mu = math.log(mean) - sigma * sigma / 2.0
    return max(1, min(cap, round(rng.lognormvariate(mu, sigma))))


def rate_series(trace: Iterable[TraceRequest], bucket_s: float = 60.0) -> list[float]:
    """Requests/s per bucket, for reports and plots."""
    counts: dict[int, int] = {}
    for r in trace:
        k = int(r.arrival_s // bucket_s)
        counts[k] = counts.get(k, 0) + 1
    if not counts:
        return []
    return [counts.get(k, 0) / bucket_s for k in range(max(counts) + 1)]


def scale_lengths(trace: Iterable[TraceRequest], prompt_mean: float | None = None,
                  gen_mean: float | None = None) -> list[TraceRequest]:
    """Rescale token lengths so their means become ``prompt_mean`` / ``gen_mean`` (e.g.
    a ModelDeployment's expectedLoad), keeping each request's relative size."""
    reqs = list(trace)
    if not reqs:
        return reqs
    p = 1.0 if prompt_mean is None else prompt_mean / (
        sum(r.prompt_tokens for r in reqs) / len(reqs))
    g = 1.0 if gen_mean is None else gen_mean / (sum(r.gen_tokens for r in reqs) / len(reqs))
    return [TraceRequest(r.arrival_s, max(1, min(MAX_TOKENS, round(r.prompt_tokens * p))),
                         max(1, min(MAX_TOKENS, round(r.gen_tokens * g)))) for r in reqs]

