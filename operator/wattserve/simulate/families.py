"""Seeded generated trace families for the trace bank.

Every family is a non-homogeneous Poisson process (Lewis-Shedler thinning) with
log-normal token lengths, parameterized by a *unit* rate (requests/s) so one family fits
any model: the bank sets the unit to what one replica of the model serves. Each
generator takes a seed; seeds other than the bank's are held-out traces of the same kind.

| family | shape |
|---|---|
| steady | constant rate 4 units, lengths sigma 0.5 |
| diurnal | one compressed day over the duration: 4 units +-60 %, plus a 5-minute ripple +-15 % |
| onoff | alternating on (6 units) / off (0.5 unit) periods of 3-12 minutes |
| flash | 2 units, then 1-2 flash crowds to >= 8x within 10-30 s, held 5-12 minutes |
| heavy | 3 units, prompts 4x the model's mean with sigma 1.2, outputs 1/2 with sigma 1.0 |
| long | several hours: diurnal 3 units +-60 % and 2.5x bursts every ~15 minutes |
| sparse | a request every ~3 minutes in 20-60 minute active spells, 1-3 h of silence between |
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from wattserve.simulate.trace import (
    MAX_REQUESTS,
    MAX_SPAN_S,
    MAX_TOKENS,
    TraceRequest,
    finite_positive,
)

FAMILIES = ("steady", "diurnal", "onoff", "flash", "heavy", "long", "sparse")
PEAK_UNITS = 20.0  # the highest rate of any family, in units (a flash crowd: 2 x 10)


@dataclass(frozen=True)
class Shape:
    """Token-length shape: means and log-normal sigmas."""

    prompt_mean: float
    gen_mean: float
    prompt_sigma: float = 1.0
    gen_sigma: float = 1.0
    max_tokens: int = 16384


def _lognormal(rng: random.Random, mean: float, sigma: float, cap: int) -> int:
    if sigma <= 0:
        return max(1, min(cap, round(mean)))
    mu = math.log(mean) - sigma * sigma / 2.0
    return max(1, min(cap, round(rng.lognormvariate(mu, sigma))))


def thinned(rng: random.Random, rate_at: Callable[[float], float], peak: float,
            horizon_s: float, shape: Shape) -> list[TraceRequest]:
    """Arrivals of a Poisson process with intensity ``rate_at`` (<= ``peak``)."""
    out: list[TraceRequest] = []
    if peak <= 0:
        return out
    t = 0.0
    while True:
        t += rng.expovariate(peak)
        if t >= horizon_s:
            return out
        if rng.random() * peak <= rate_at(t):
            out.append(TraceRequest(
                t, _lognormal(rng, shape.prompt_mean, shape.prompt_sigma, shape.max_tokens),
                _lognormal(rng, shape.gen_mean, shape.gen_sigma, shape.max_tokens)))


def _spells(rng: random.Random, horizon: float, on: tuple[float, float],
            off: tuple[float, float], start_on: bool = True) -> list[tuple[float, float]]:
    spells: list[tuple[float, float]] = []
    t, is_on = 0.0, start_on
    while t < horizon:
        span = rng.uniform(*(on if is_on else off))
        if is_on:
            spells.append((t, min(horizon, t + span)))
        t += span
        is_on = not is_on
    return spells


def _inside(spells: list[tuple[float, float]], x: float) -> bool:
    return any(a <= x < b for a, b in spells)


def generate(family: str, *, seed: int, unit_rate: float, shape: Shape,
             hours: float = 1.0) -> list[TraceRequest]:
    """A trace of ``family`` (see the module docstring) lasting ``hours``."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; one of {', '.join(FAMILIES)}")
    finite_positive("hours", hours, MAX_SPAN_S / 3600.0)
    finite_positive("unit", unit_rate, MAX_REQUESTS / PEAK_UNITS)
    finite_positive("prompt", shape.prompt_mean, MAX_TOKENS)
    finite_positive("gen", shape.gen_mean, MAX_TOKENS)
    # The thinning draws at the family's peak rate; at most 5 draws per request allowed
    # keeps the steady family (4 units of 20) within the requests any trace may hold.
    if hours * 3600.0 * unit_rate * PEAK_UNITS > 5 * MAX_REQUESTS:
        raise ValueError(f"hours x unit would make more than about {MAX_REQUESTS} requests")
    rng = random.Random(f"{family}:{seed}")
    horizon = hours * 3600.0
    u = unit_rate
    if family == "steady":
        s = Shape(shape.prompt_mean, shape.gen_mean, 0.5, 0.5, shape.max_tokens)
        return thinned(rng, lambda _x: 4 * u, 4 * u, horizon, s)
    if family == "diurnal":
        def diurnal(x: float) -> float:
            day = 1.0 - 0.6 * math.cos(2 * math.pi * x / horizon)
            return 4 * u * day * (1.0 + 0.15 * math.sin(2 * math.pi * x / 300.0))
        return thinned(rng, diurnal, 4 * u * 1.6 * 1.15, horizon, shape)
    if family == "onoff":
        spells = _spells(rng, horizon, (180.0, 720.0), (180.0, 720.0))
        return thinned(rng, lambda x: 6 * u if _inside(spells, x) else 0.5 * u, 6 * u,
                       horizon, shape)
    if family == "flash":
        crowds: list[tuple[float, float, float, float]] = []  # start, ramp, hold, factor
        for _ in range(1 + int(hours >= 1.0 and rng.random() < 0.5)):
            crowds.append((rng.uniform(0.15, 0.75) * horizon, rng.uniform(10.0, 30.0),
                           rng.uniform(300.0, 720.0), rng.uniform(8.0, 10.0)))

        def flash(x: float) -> float:
            for a, ramp, hold, f in crowds:
                if a <= x < a + ramp + hold + ramp:
                    up = min(1.0, (x - a) / ramp, (a + 2 * ramp + hold - x) / ramp)
                    return 2 * u * (1.0 + (f - 1.0) * up)
            return 2 * u
        return thinned(rng, flash, 2 * u * 10.0, horizon, shape)
    if family == "heavy":
        s = Shape(4 * shape.prompt_mean, shape.gen_mean / 2, 1.2, 1.0, shape.max_tokens)
        return thinned(rng, lambda _x: 3 * u, 3 * u, horizon, s)
    if family == "long":
        bursts: list[tuple[float, float]] = []
        t = rng.expovariate(1 / 900.0)
        while t < horizon:
            bursts.append((t, t + rng.uniform(60.0, 180.0)))
            t += rng.expovariate(1 / 900.0)

        def long(x: float) -> float:
            r = 3 * u * (1.0 - 0.6 * math.cos(2 * math.pi * x / horizon))
            for a, b in bursts:
                if a <= x < b:
                    return r * (1.0 + 1.5 * min(1.0, (x - a) / 45.0, (b - x) / 45.0))
            return r
        return thinned(rng, long, 3 * u * 1.6 * 2.5, horizon, shape)
    # sparse: one request every ~3 minutes while active, hours of silence in between
    spells = _spells(rng, horizon, (1200.0, 3600.0), (3600.0, 10800.0))
    return thinned(rng, lambda x: 1 / 180.0 if _inside(spells, x) else 0.0, 1 / 180.0,
                   horizon, shape)
