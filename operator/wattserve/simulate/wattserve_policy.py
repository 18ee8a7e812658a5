"""wattserve's policy in the simulator: Prometheus-like observations -> ``decide``."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace

from wattserve import contract
from wattserve.autoscale.model import ScalerState, ScalingInputs
from wattserve.autoscale.observe import Observation
from wattserve.autoscale.policy import decide
from wattserve.simulate.engine import ClusterView

DEFAULT_IDLE_TIMEOUT_S = 300.0  # minReplicas 0: idle this long -> zero replicas


def histogram_quantile(q: float, values: list[float],
                       buckets: tuple[float, ...] = contract.LATENCY_BUCKETS_SECONDS
                       ) -> float | None:
    """What Prometheus' ``histogram_quantile`` returns for these observations: linear
    interpolation inside the bucket holding the q-quantile (lower bound 0 for the first
    bucket, the last finite bound when the quantile falls into +Inf)."""
    if not values:
        return None
    counts = [0] * (len(buckets) + 1)
    for v in values:
        lo, hi = 0, len(buckets)
        while lo < hi:  # first bucket with bound >= v
            mid = (lo + hi) // 2
            if buckets[mid] >= v:
                hi = mid
            else:
                lo = mid + 1
        counts[lo] += 1
    rank = q * len(values)
    cum = 0
    for i, c in enumerate(counts):
        if cum + c >= rank and c > 0:
            if i == len(buckets):
                return buckets[-1]
            lower = 0.0 if i == 0 else buckets[i - 1]
            return lower + (buckets[i] - lower) * (rank - cum) / c
        cum += c
    return buckets[-1]


def observe(view: ClusterView, window_s: float, energy: deque[tuple[float, float]]
            ) -> Observation:
    """The Observation wattserve's PromQL would return at ``view.now``: every series as of
    Prometheus's last scrape of the pods (up to a scrape interval old), rates and
    quantiles over the window that ends there."""
    end = view.scraped_at
    done = view.completions(window_s, until=end)
    span = min(window_s, max(end, 1e-9))
    rate = len(done) / span
    gen = sum(c.gen for c in done) / span
    jpt = None
    if len(energy) >= 2 and gen > 0:
        (t0, e0), (t1, e1) = energy[0], energy[-1]
        if t1 > t0:
            jpt = (e1 - e0) / (t1 - t0) / gen
    in_flight, queued = view.scraped()
    # The serving app's histograms start when a replica takes the request: time held by
    # the activator during a cold start is not in them.
    return Observation(
        request_rate=rate,
        p95_latency_s=histogram_quantile(0.95, [c.latency - c.held for c in done]),
        p95_ttft_s=histogram_quantile(0.95, [c.ttft - c.held for c in done]),
        prompt_tps=sum(c.prompt for c in done) / span,
        generation_tps=gen,
        in_flight=in_flight,
        queued=queued,
        busy=sum(c.latency - c.held for c in done) / span,
        joules_per_token=jpt,
        energy_source="wattserve",
    )


@dataclass
class WattservePolicy:
    spec: ScalingInputs
    initial_replicas: int = 1
    interval_s: float = 15.0
    window_s: float = 60.0
    name: str = "wattserve"
    idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S  # used when spec.min_replicas == 0
    state: ScalerState | None = None
    reasons: list[str] = field(default_factory=list)
    _energy: deque[tuple[float, float]] = field(default_factory=deque)

    def initial(self, view: ClusterView) -> int:
        # The deployment was created with this count: the first recommendation.
        self.state = ScalerState(replicas=self.initial_replicas,
                                 recommendations=((view.now, self.initial_replicas),))
        return self.initial_replicas

    def tick(self, view: ClusterView) -> int:
        now = view.now
        if self.spec.min_replicas == 0 and self._idle(view):
            self.reasons.append("ScaledToZero")
            return 0
        self._energy.append((now, view.energy_j()))
        while self._energy and now - self._energy[0][0] > self.window_s:
            self._energy.popleft()
        obs = observe(view, self.window_s, self._energy)
        spec = replace(self.spec, current_replicas=view.desired,
                       ready_replicas=len(view.ready()), metrics_window_s=self.window_s)
        state = self.state or ScalerState(replicas=view.desired)
        decision, self.state = decide(spec, state, obs, now)
        self.reasons.append(decision.reason)
        return decision.desired_replicas

    def _idle(self, view: ClusterView) -> bool:
        """No request for ``idle_timeout_s`` and none in flight or held (or already at zero
        with nothing waiting: the simulator's activator wakes a replica on arrival)."""
        if view.in_flight() or view.queued():
            return False
        if view.desired == 0:
            return True
        last = view.last_arrival
        return view.now - (0.0 if last is None else last) >= self.idle_timeout_s
