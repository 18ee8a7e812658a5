"""HPA, Ray Serve and static baselines follow their documented algorithms."""

from __future__ import annotations

from dataclasses import dataclass, field

from wattserve.simulate.baselines import HpaPolicy, RayServePolicy, StaticPolicy


@dataclass
class FakeReplica:
    rid: int
    ready_at: float = 0.0
    busy_s: float = 0.0
    outstanding: int = 0

    def is_ready(self, now: float) -> bool:
        return now >= self.ready_at

    def advance(self, now: float) -> None:
        pass


@dataclass
class FakeView:
    now: float = 0.0
    desired: int = 0
    reps: list[FakeReplica] = field(default_factory=list)
    pending: int = 0

    def replicas(self) -> list[FakeReplica]:
        return self.reps

    def ready(self) -> list[FakeReplica]:
        return [r for r in self.reps if r.is_ready(self.now)]

    def router_queued(self) -> int:
        return self.pending


def hpa_tick(hpa: HpaPolicy, view: FakeView, utilization: float, dt: float = 15.0) -> int:
    """Advance 15 s with every replica busy ``utilization`` of the time; apply the result."""
    view.now += dt
    for r in view.reps:
        r.busy_s += utilization * dt
    desired = hpa.tick(view)  # type: ignore[arg-type]
    while len(view.reps) < desired:
        view.reps.append(FakeReplica(len(view.reps), ready_at=view.now))
    del view.reps[desired:]
    view.desired = desired
    return desired


def fresh(n: int) -> FakeView:
    return FakeView(desired=n, reps=[FakeReplica(i) for i in range(n)])


def test_hpa_desired_is_ceil_current_times_metric_over_target() -> None:
    hpa, view = HpaPolicy(target_utilization=0.5, max_replicas=50), fresh(4)
    hpa_tick(hpa, view, 0.9)  # first sample: no window yet for anyone
    assert hpa_tick(hpa, view, 0.9) == 8  # ceil(4 x 0.9 / 0.5) = 8, within max(2x, +4)


def test_hpa_ignores_changes_within_the_10_percent_tolerance() -> None:
    hpa, view = HpaPolicy(target_utilization=0.5), fresh(4)
    hpa_tick(hpa, view, 0.54)
    assert hpa_tick(hpa, view, 0.54) == 4  # ratio 1.08


def test_hpa_scale_up_is_limited_to_double_or_four_pods_per_period() -> None:
    hpa, view = HpaPolicy(target_utilization=0.1, max_replicas=100), fresh(2)
    hpa_tick(hpa, view, 1.0)
    assert hpa_tick(hpa, view, 1.0) == 6  # wants 20; max(2 x 2, 2 + 4) = 6


def test_hpa_scale_down_waits_for_the_300s_stabilization_window() -> None:
    hpa, view = HpaPolicy(target_utilization=0.5), fresh(8)
    hpa_tick(hpa, view, 0.5)
    hpa_tick(hpa, view, 0.5)
    results = [hpa_tick(hpa, view, 0.1) for _ in range(21)]
    assert results[:18] == [8] * 18  # the 8-recommendation is still inside 300 s
    assert results[-1] == 2  # ceil(8 x 0.1 / 0.5)


def test_hpa_counts_not_yet_ready_pods_as_idle_when_scaling_up() -> None:
    hpa, view = HpaPolicy(target_utilization=0.5, max_replicas=50), fresh(2)
    hpa_tick(hpa, view, 0.6)
    view.reps += [FakeReplica(2, ready_at=1e9), FakeReplica(3, ready_at=1e9)]
    view.desired = 4
    # Ready pods at 60 % want ceil(2 x 1.2) = 3 > 2, but with 2 unready pods at 0 % the
    # ratio is 0.6 x 2 / 4 / 0.5 = 0.6: no scale-up.
    assert hpa_tick(hpa, view, 0.6) == 4


def ray_run(ray: RayServePolicy, view: FakeView, ongoing_per_replica: int,
            seconds: int) -> list[int]:
    out = []
    for _ in range(seconds):
        view.now += 1.0
        for r in view.reps:
            r.outstanding = ongoing_per_replica
        desired = ray.tick(view)  # type: ignore[arg-type]
        if desired != view.desired:
            view.reps = [FakeReplica(i) for i in range(desired)]
            view.desired = desired
        out.append(desired)
    return out


def test_ray_scales_up_to_total_ongoing_over_target_after_the_upscale_delay() -> None:
    ray, view = RayServePolicy(target_ongoing_requests=2.0, max_replicas=50), fresh(2)
    ray._last_push = 0.0
    trace = ray_run(ray, view, ongoing_per_replica=6, seconds=60)
    first_change = next(i for i, d in enumerate(trace) if d != 2)
    assert 29 <= first_change <= 45  # 30 s upscale delay (+ metrics push period)
    assert trace[first_change] == 6  # ceil(2 x 6 / 2)


def test_ray_waits_600s_before_scaling_down() -> None:
    ray, view = RayServePolicy(target_ongoing_requests=2.0), fresh(6)
    trace = ray_run(ray, view, ongoing_per_replica=0, seconds=700)
    first_change = next(i for i, d in enumerate(trace) if d != 6)
    assert 599 <= first_change <= 650
    assert trace[first_change] == 1  # min_replicas


def test_static_never_changes() -> None:
    s = StaticPolicy(5)
    assert s.initial(FakeView()) == 5  # type: ignore[arg-type]
    assert s.tick(FakeView(now=1e6, desired=5)) == 5  # type: ignore[arg-type]
