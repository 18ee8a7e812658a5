"""Short-horizon forecasting for the policy (pure): an arrival-rate band and the
start-up time learned from observed readiness.

**Rate band.** New capacity arrives a *lead* time after a decision (the start-up time
plus one tick), so the policy must plan for the rate at the end of the lead, not the one
it measured. The band's upper edge is

    upper = r + max(0, trend) x lead + z x sqrt(r / W + v x lead)

where ``r`` is the windowed rate (``W`` seconds), ``r / W`` the variance of that
estimate for Poisson arrivals, ``v`` the variance per second of the rate's tick-to-tick
rises (an EWMA of ``max(0, dr)^2 / dt``: large on bursty traffic, small on steady traffic),
so ``v x lead`` is how far a random walk drifts over the lead, and ``z`` = 1.645 (one-sided
95 %). Headroom is therefore sized by what the traffic has actually done, not by a
constant: a steady trace gets a few per cent, a bursty one a lot. The drift variance is
capped at ``r^2`` (the drift's standard deviation at the rate itself): ``v`` remembers
rises for ~20 ticks, and uncapped it kept a load that had stopped planned for long after
the scale-down delay (the live check's shape: 2 replicas held at 0 req/s for over 90 s).

**Little's-law rate.** The windowed rate lags a step by up to a window. The sequences in
flight right now, divided by the time each spends in service, estimate the current rate
without that lag (``N ~ Poisson(r x S)``); it replaces the windowed rate when it is
significantly (3 standard deviations: the test is made every tick) above it.

**Recurring bursts.** A rise faster than the lead time is missed whatever the band says:
the capacity it needs is still starting when it arrives. Once that has happened twice
within the memory (two *late* episodes: SLO misses on contended replicas while added
replicas were still starting or unseen, the second after replicas had been removed
again; a step: at least twice the ready replicas needed), the traffic has shown it comes
back in steps, so the count its busiest settled window needed is held (not scaled below)
until the memory (that of the misses, ~50 min at 15 s ticks) expires. A single step (a
load test that stops) leaves no hold.

**Start-up time.** Replicas requested but not yet seen ready are remembered with their
request time; when the ready count rises, the oldest are taken as ready and their age is
a sample of the start-up time (EWMA).
"""

from __future__ import annotations

import math

Z_BAND = 1.645
Z_LITTLE = 3.0  # a test made every tick: 1.645 would fire on noise every ~20 ticks
VOLATILITY_ALPHA = 0.05  # memory of ~20 ticks (5 min at 15 s)
STARTUP_ALPHA = 0.3


def volatility(old: float, last_rate: float | None, last_time: float | None, rate: float,
               now: float, alpha: float = VOLATILITY_ALPHA) -> float:
    """EWMA of the rate's squared rise per second ((req/s)^2 / s). Only rises count:
    they are what the band must cover; a falling rate adds nothing."""
    if last_rate is None or last_time is None or now <= last_time:
        return old
    sample = max(0.0, rate - last_rate) ** 2 / (now - last_time)
    return (1.0 - alpha) * old + alpha * sample


def upper_rate(rate: float, window_s: float, vol: float, trend: float, lead_s: float,
               z: float = Z_BAND) -> float:
    """Upper edge of the arrival-rate band at the end of the lead (see module doc)."""
    rate = max(rate, 0.0)
    # The drift is that of the rate's own level: capped at the rate itself, so a rate that
    # has fallen to nothing keeps no headroom from the rises that brought the load that
    # left (holding capacity after a load falls is the scale-down window's job).
    drift = min(max(vol, 0.0) * max(lead_s, 0.0), rate * rate)
    spread = rate / max(window_s, 1e-9) + drift
    return rate + max(trend, 0.0) * max(lead_s, 0.0) + z * math.sqrt(spread)


def rate_changed(rate: float, last_rate: float | None, dt_s: float, window_s: float,
                 z: float = Z_LITTLE) -> bool:
    """Whether the windowed rate moved by more than Poisson noise since the last tick.

    Two ``window_s`` windows ``dt_s`` apart differ in the arrivals of two ``dt_s`` slices,
    so for a constant rate ``r`` their difference has variance ``2 r dt / W^2``; a change
    beyond ``z`` standard deviations (or the first observation) means the traffic's regime
    moved and the window now mixes two regimes."""
    if last_rate is None or dt_s <= 0 or window_s <= 0:
        return True
    r = max(rate, last_rate, 0.0)
    sd = math.sqrt(2.0 * r * min(dt_s, window_s)) / window_s
    return abs(rate - last_rate) > z * sd + 1.0 / window_s


def little_rate(rate: float, in_flight: float | None, service_s: float,
                z: float = Z_LITTLE) -> float:
    """The current arrival rate when the sequences in flight say it is significantly
    above the windowed ``rate``; else ``rate``."""
    if in_flight is None or service_s <= 0:
        return rate
    now_rate = in_flight / service_s
    if now_rate > rate + z * math.sqrt(max(rate, 1e-9) / service_s):
        return now_rate
    return rate


def learn_startup(
    unready: tuple[tuple[float, int], ...], last_ready: int | None, ready: int | None,
    now: float, learned: float | None, alpha: float = STARTUP_ALPHA,
) -> tuple[tuple[tuple[float, int], ...], float | None]:
    """Consume the oldest requested-but-unready replicas for a rise in the ready count;
    returns (still unready, learned start-up time)."""
    if ready is None or last_ready is None or ready <= last_ready or not unready:
        return unready, learned
    gained = ready - last_ready
    rest = list(unready)
    while gained > 0 and rest:
        t, n = rest[0]
        take = min(n, gained)
        gained -= take
        sample = max(0.0, now - t)
        learned = sample if learned is None else (1.0 - alpha) * learned + alpha * sample
        if take == n:
            rest.pop(0)
        else:
            rest[0] = (t, n - take)
    return tuple(rest), learned


def drop_newest(unready: tuple[tuple[float, int], ...], count: int
                ) -> tuple[tuple[float, int], ...]:
    """A scale-down removes replicas still starting first (newest first)."""
    rest = list(unready)
    while count > 0 and rest:
        t, n = rest[-1]
        if n <= count:
            rest.pop()
            count -= n
        else:
            rest[-1] = (t, n - count)
            count = 0
    return tuple(rest)


def late_episodes(episodes: tuple[float, ...], now: float, late: bool,
                  scaled_down_at: float | None, memory_s: float) -> tuple[float, ...]:
    """Start times of the recent late-miss episodes, forgotten after ``memory_s``. A late
    miss starts a new episode only if replicas were removed since the last one began: a
    step that caught the policy after it had scaled down (a regret), not the same long
    burst missed again while capacity is still arriving."""
    kept = tuple(t for t in episodes if now - t < memory_s)
    if late and (not kept or (scaled_down_at is not None and scaled_down_at > kept[-1])):
        kept = (*kept, now)
    return kept


def recent_peak(level: int, since: float | None, needed: int, now: float, memory_s: float
                ) -> tuple[int, float]:
    """(count, time it was set): the most replicas a window needed within ``memory_s``
    (a new peak or an expired one is replaced by what this window needs)."""
    if since is None or needed >= level or now - since >= memory_s:
        return needed, now
    return level, since
