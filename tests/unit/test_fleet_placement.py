"""Fleet placement: spill-over with a reason, PoolsFull, priority, re-balancing hysteresis,
and how the reconcile reports and carries it out (PoolsFull, make-before-break)."""

from __future__ import annotations

import copy
from typing import Any

from wattserve.api import parse_model_deployment
from wattserve.planning import plan
from wattserve.planning.capacity import Resources, shape_capacity
from wattserve.planning.fleet import Member, Rebalance, assign, fleet_plan
from wattserve.reconcile.decide import Observed, decide
from wattserve.render import RenderSettings

from tests.unit.factories import example_pools
from tests.unit.test_render_support import example_md_doc

POOLS = example_pools()
NOW = "2026-01-01T00:00:00Z"


def smol(name: str, priority: int = 0, created: str = "") -> tuple[dict[str, Any], Member]:
    doc = example_md_doc("smollm2-135m.yaml")
    doc["metadata"] = {"name": name, "namespace": "ns", "uid": f"uid-{name}", "generation": 1}
    doc["spec"]["priority"] = priority
    md = parse_model_deployment(doc)
    return doc, Member(md, plan(md, POOLS), created=created)


def fleet(count: int) -> list[Member]:
    return [smol(f"smol-{i:02d}")[1] for i in range(count)]


def test_twelve_small_models_fill_the_cpu_pool_then_spill_to_the_next_cheapest() -> None:
    got = assign(fleet(12), POOLS)
    pools = [got[("ns", f"smol-{i:02d}")].candidate for i in range(12)]
    assert [c.pool if c else None for c in pools] == ["cpu-general"] * 6 + ["gpu-l4"] * 6
    spilled = got[("ns", "smol-06")]
    assert spilled.spilled_from == "cpu-general"
    assert spilled.reason == ("cpu-general full: 48/48 vCPU committed; "
                              "gpu-l4 at $2.5/1M tokens")
    assert got[("ns", "smol-00")].spilled_from is None


def test_when_no_feasible_pool_has_room_the_model_is_not_placed_and_says_pools_full() -> None:
    members = [smol("first")[1], smol("second")[1], smol("third")[1]]
    tiny = {p.name: shape_capacity(p, max_nodes=0) for p in POOLS}
    tiny["cpu-general"] = shape_capacity(next(p for p in POOLS if p.name == "cpu-general"), 1)
    got = assign(members, POOLS, tiny)  # one 16-vCPU node: two models of 2 × 4 vCPUs
    assert got[("ns", "second")].candidate is not None
    third = got[("ns", "third")]
    assert third.candidate is None and third.full
    assert third.reason == ("no feasible pool has room: cpu-general full: 16/16 vCPU "
                            "committed; gpu-l4 full: 0/0 GPUs committed; gpu-h100 full: 0/0 "
                            "GPUs committed")  # best first


def test_priority_then_age_then_name_decide_who_gets_the_full_pool() -> None:
    members = [smol(f"m{i:02d}", created="2026-01-02T00:00:00Z")[1] for i in range(6)]
    members.append(smol("urgent", priority=10, created="2026-01-03T00:00:00Z")[1])
    members.append(smol("veteran", created="2026-01-01T00:00:00Z")[1])
    got = assign(members, POOLS)
    assert got[("ns", "urgent")].candidate.pool == "cpu-general"  # type: ignore[union-attr]
    assert got[("ns", "veteran")].candidate.pool == "cpu-general"  # type: ignore[union-attr]
    cpu = sorted(k[1] for k, a in got.items() if a.candidate and a.candidate.pool == "cpu-general")
    assert cpu == ["m00", "m01", "m02", "m03", "urgent", "veteran"]  # m04, m05 spilled


def test_a_running_model_is_never_evicted_by_a_newcomer_of_higher_priority() -> None:
    running = [running_on(smol(f"m{i:02d}")[1], "cpu-general") for i in range(6)]
    urgent = smol("urgent", priority=100)[1]
    got = assign([*running, urgent], POOLS)
    assert all(got[m.key].candidate.pool == "cpu-general" for m in running)  # type: ignore[union-attr]
    assert got[urgent.key].candidate.pool == "gpu-l4"  # type: ignore[union-attr]
    assert got[urgent.key].spilled_from == "cpu-general"


def running_on(member: Member, pool: str, placed_at: float = 0.0) -> Member:
    cand = next(c for c in member.plan.candidates if c.pool == pool)
    gpus = max(1, cand.tensor_parallel) if pool.startswith("gpu") else 0
    return Member(member.md, member.plan, member.created, current_pool=pool,
                  current_replicas=cand.replicas,
                  current_request=Resources(cand.cpu_request, cand.memory_request_gib, gpus),
                  placed_at=placed_at)


def test_a_spilled_model_moves_back_only_after_the_dwell_time() -> None:
    spilled = running_on(smol("back")[1], "gpu-l4", placed_at=1000.0)
    policy = Rebalance(min_gain=0.10, dwell_seconds=300)
    early = assign([spilled], POOLS, now=1100.0, policy=policy)[spilled.key]
    assert early.candidate.pool == "gpu-l4"  # type: ignore[union-attr]
    # No running clock in the text: the status stays the same while the model waits.
    assert "moves after 300 s on a pool;" in early.reason and "so far" not in early.reason
    assert early.recheck_after_s == 200.0
    assert early.recheck_after_s == 200.0
    late = assign([spilled], POOLS, now=1300.0, policy=policy)[spilled.key]
    assert late.candidate.pool == "cpu-general"  # type: ignore[union-attr]


def test_a_move_that_saves_less_than_the_threshold_is_not_made() -> None:
    spilled = running_on(smol("stay")[1], "gpu-l4")
    got = assign([spilled], POOLS, policy=Rebalance(min_gain=0.9, dwell_seconds=0))
    assert got[spilled.key].candidate.pool == "gpu-l4"  # type: ignore[union-attr]
    assert got[spilled.key].reason.startswith("staying on gpu-l4: cpu-general would save 65%")


def decide_with(doc: dict[str, Any], member: Member, members: list[Member],
                children: dict | None = None) -> Any:
    got = assign(members, POOLS)[member.key]
    obs = Observed(body=doc, pools=POOLS, children=children or {}, pools_full=got.full,
                   spilled_from=got.spilled_from)
    return decide(obs, RenderSettings(), NOW, fleet_plan(member, got))


def test_pools_full_is_placed_false_with_a_warning_event_and_no_workload() -> None:
    members = fleet(12)
    full_pools = [p for p in POOLS if p.name == "cpu-general"]
    doc, last = smol("smol-11")
    got = assign(members, full_pools)[last.key]
    obs = Observed(body=doc, pools=full_pools, pools_full=got.full)
    out = decide(obs, RenderSettings(), NOW, fleet_plan(last, got))
    placed = next(c for c in out.status_patch["conditions"] if c["type"] == "Placed")
    assert (placed["status"], placed["reason"]) == ("False", "PoolsFull")
    assert "cpu-general full: 48/48 vCPU committed" in placed["message"]
    assert [(e.type, e.reason) for e in out.events] == [("Warning", "PoolsFull")]
    assert out.apply == ()


def test_a_spilled_placement_says_why_in_status() -> None:
    members = fleet(12)
    doc, _ = smol("smol-07")
    out = decide_with(doc, members[7], members)
    placed = next(c for c in out.status_patch["conditions"] if c["type"] == "Placed")
    assert placed["status"] == "True"
    assert placed["message"] == ("on gpu-l4: cpu-general full: 48/48 vCPU committed; "
                                 "gpu-l4 at $2.5/1M tokens")
    placement = out.status_patch["placement"]
    assert placement["pool"] == "gpu-l4" and placement["spilledFrom"] == "cpu-general"
    assert placement["placedAt"] == NOW


def test_moving_to_another_pool_surges_new_pods_before_old_ones_stop() -> None:
    doc, member = smol("mover")
    first = decide_with(doc, member, [member])
    dep = copy.deepcopy(next(o for o in first.apply if o["kind"] == "Deployment"))
    dep["metadata"]["generation"] = 1
    dep["spec"]["template"]["metadata"]["labels"]["wattserve.dev/pool"] = "gpu-l4"
    dep["metadata"]["labels"]["wattserve.dev/pool"] = "gpu-l4"
    dep["status"] = {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1}
    out = decide_with(doc, member, [member], {("Deployment", "mover"): dep})
    moved = next(o for o in out.apply if o["kind"] == "Deployment")
    assert moved["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": "100%",
                                                          "maxUnavailable": 0}
    assert moved["spec"]["template"]["metadata"]["labels"]["wattserve.dev/pool"] == \
        "cpu-general"
    # the Service selects the model, not the pool: old and new pods serve during the move
    service = next(o for o in first.apply if o["kind"] == "Service")
    assert "wattserve.dev/pool" not in service["spec"]["selector"]


def test_a_finished_move_goes_back_to_the_rendered_strategy() -> None:
    doc, member = smol("settled")
    first = decide_with(doc, member, [member])
    dep = copy.deepcopy(next(o for o in first.apply if o["kind"] == "Deployment"))
    rendered = copy.deepcopy(dep["spec"]["strategy"])
    dep["metadata"]["generation"] = 2
    dep["spec"]["strategy"] = {"type": "RollingUpdate",
                               "rollingUpdate": {"maxSurge": "100%", "maxUnavailable": 0}}
    dep["status"] = {"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2}
    out = decide_with(doc, member, [member], {("Deployment", "settled"): dep})
    again = next(o for o in out.apply if o["kind"] == "Deployment")
    assert again["spec"]["strategy"] == rendered


def test_a_model_that_lost_its_place_but_still_runs_keeps_its_room_counted() -> None:
    stuck = running_on(smol("a-stuck")[1], "cpu-general")  # first in order, pin fails below
    md = stuck.md
    pinned = type(md.spec.placement)(pool="nowhere")
    spec = type(md.spec)(**{**vars(md.spec), "placement": pinned})
    lost = Member(type(md)(md.name, md.namespace, spec), plan(type(md)(
        md.name, md.namespace, spec), POOLS), current_pool="cpu-general",
        current_replicas=stuck.current_replicas, current_request=stuck.current_request)
    others = [smol(f"b{i}")[1] for i in range(6)]
    got = assign([lost, *others], POOLS)
    assert got[lost.key].candidate is None
    on_cpu = [m for m in others if got[m.key].candidate.pool == "cpu-general"]  # type: ignore[union-attr]
    assert len(on_cpu) == 5  # its 2 replicas still hold 8 of the 48 vCPUs
