"""A CPU pool's ``tuning.cpuMillisPerThread``: a replica requests less than a core per
llama.cpp thread (Burstable; its limit stays its threads), so a small node holds more
replicas, and the planner, the capacity model and the renderer agree on it."""

from __future__ import annotations

import copy

import pytest
from wattserve.api import SpecError, parse_model_deployment, parse_serving_pool
from wattserve.planning import plan
from wattserve.planning.capacity import replica_request
from wattserve.render import RenderInputs, RenderSettings, render_deployment

from tests.unit.factories import example_pool_docs, example_pools
from tests.unit.test_render_support import example_md_doc


def _local(millis: int | None) -> dict:
    docs = example_pool_docs()
    doc = copy.deepcopy(next(d for d in docs if d["metadata"]["name"] == "cpu-local"))
    doc["spec"].pop("tuning", None)
    if millis is not None:
        doc["spec"]["tuning"] = {"cpuMillisPerThread": millis}
    return doc


def _smollm2_on(pool_doc: dict):
    md = parse_model_deployment(example_md_doc("smollm2-135m-oci.yaml"))
    pool = parse_serving_pool(pool_doc)
    chosen = plan(md, [pool]).chosen
    assert chosen is not None
    return md, pool, chosen


def test_the_real_node_pool_holds_two_one_thread_replicas_at_half_a_core_each() -> None:
    _, _, whole = _smollm2_on(_local(None))
    _, _, half = _smollm2_on(_local(500))
    assert (whole.threads, whole.replicas_per_node, whole.cpu_millis) == (1, 1, 1000)
    assert (half.threads, half.replicas_per_node, half.cpu_millis) == (1, 2, 500)
    assert half.usd_per_hour < whole.usd_per_hour  # a replica pays for the share it requests


def test_the_example_real_node_pool_is_burstable() -> None:
    local = next(p for p in example_pools() if p.name == "cpu-local")
    assert local.spec.tuning.cpu_millis_per_thread == 500


def test_rendered_pod_requests_the_millicores_and_is_limited_to_its_threads() -> None:
    md, pool, chosen = _smollm2_on(_local(500))
    dep = render_deployment(RenderInputs(md, pool, chosen, 2, RenderSettings()))
    serving = dep["spec"]["template"]["spec"]["containers"][0]
    assert serving["resources"]["requests"]["cpu"] == "500m"
    assert serving["resources"]["limits"]["cpu"] == "1"
    env = {e["name"]: e.get("value") for e in serving["env"]}
    assert env["WATTSERVE_THREADS"] == "1"


def test_capacity_counts_what_the_pod_requests() -> None:
    _, pool, chosen = _smollm2_on(_local(500))
    assert replica_request(chosen, pool).cpu == 0.5


def test_whole_core_pools_render_as_before() -> None:
    md, pool, chosen = _smollm2_on(_local(None))
    dep = render_deployment(RenderInputs(md, pool, chosen, 1, RenderSettings()))
    res = dep["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert res["requests"]["cpu"] == res["limits"]["cpu"] == "1"


@pytest.mark.parametrize("bad", [50, 1001, "500m"])
def test_out_of_range_millis_per_thread_is_rejected_naming_the_field(bad: object) -> None:
    doc = _local(None)
    doc["spec"]["tuning"] = {"cpuMillisPerThread": bad}
    with pytest.raises(SpecError, match="cpuMillisPerThread"):
        parse_serving_pool(doc)
