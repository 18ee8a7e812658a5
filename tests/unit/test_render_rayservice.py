"""RayService rendering: Serve config, worker group on the pool, replicas."""

from __future__ import annotations

import yaml
from wattserve import contract
from wattserve.render import RenderSettings, desired_children, render_rayservice

from tests.unit.test_render_support import example_md_doc, inputs_for


def _inputs(file: str, **kw: object):
    doc = example_md_doc(file)
    doc["spec"]["backend"] = "rayservice"
    return inputs_for(doc, **kw)


def test_rayservice_backend_renders_only_a_rayservice() -> None:
    (obj,) = desired_children(_inputs("smollm2-135m.yaml"))
    assert (obj["apiVersion"], obj["kind"]) == ("ray.io/v1", "RayService")
    assert obj["metadata"]["ownerReferences"][0]["controller"] is True


def test_serve_config_runs_the_configured_import_path_with_desired_replicas() -> None:
    settings = RenderSettings(import_path="my.mod:app")
    rs = render_rayservice(_inputs("smollm2-135m.yaml", replicas=3, settings=settings))
    cfg = yaml.safe_load(rs["spec"]["serveConfigV2"])
    (app,) = cfg["applications"]
    assert app["import_path"] == "my.mod:app"
    (dep,) = app["deployments"]
    assert dep["num_replicas"] == 3
    assert app["runtime_env"]["env_vars"][contract.ENV_ENGINE] == "llamacpp"


def test_default_import_path_is_the_wattserve_ray_app() -> None:
    cfg = yaml.safe_load(render_rayservice(_inputs("smollm2-135m.yaml"))["spec"]["serveConfigV2"])
    assert cfg["applications"][0]["import_path"] == "wattserve_serving.ray_app:app"


def test_gpu_pool_runs_vllm_with_gpus_per_replica() -> None:
    inputs = _inputs("llama-3.1-8b-high-load.yaml")
    rs = render_rayservice(inputs)
    cfg = yaml.safe_load(rs["spec"]["serveConfigV2"])
    app = cfg["applications"][0]
    assert app["runtime_env"]["env_vars"][contract.ENV_ENGINE] == "vllm"
    tp = max(1, inputs.candidate.tensor_parallel)
    assert app["deployments"][0]["ray_actor_options"]["num_gpus"] == tp
    (worker,) = rs["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    pod = worker["template"]["spec"]
    assert pod["nodeSelector"] == {"wattserve.dev/pool": inputs.pool.name}
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == str(tp)


def test_worker_group_sits_on_the_pool_with_one_worker_per_replica() -> None:
    inputs = _inputs("smollm2-135m.yaml", replicas=4)
    rs = render_rayservice(inputs)
    (worker,) = rs["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    assert worker["replicas"] == 4
    assert worker["minReplicas"] <= 4 <= worker["maxReplicas"]
    pod = worker["template"]["spec"]
    assert pod["nodeSelector"] == {"wattserve.dev/pool": "cpu-general"}
    assert any(t.get("value") == "cpu-general" for t in pod["tolerations"])
    assert pod["containers"][0]["resources"]["requests"]["cpu"] == \
        str(inputs.candidate.cpu_request)


def test_head_runs_no_replicas() -> None:
    head = render_rayservice(_inputs("smollm2-135m.yaml"))["spec"]["rayClusterConfig"][
        "headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0"


def test_hf_source_adds_the_fetch_init_container_to_workers() -> None:
    doc = example_md_doc("smollm2-135m.yaml")
    doc["spec"]["backend"] = "rayservice"
    doc["spec"]["model"]["source"] = "hf://org/model"
    rs = render_rayservice(inputs_for(doc))
    pod = rs["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["template"]["spec"]
    assert pod["initContainers"][0]["command"][-2:] == ["hf://org/model", "/models"]
