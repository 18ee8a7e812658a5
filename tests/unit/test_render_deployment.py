"""Deployment + Service rendering: placement on the pool, resources, probes, env, labels."""

from __future__ import annotations

from dataclasses import replace

from wattserve import contract
from wattserve.render import (
    RenderSettings,
    desired_children,
    render_deployment,
    render_service,
    selector_labels,
)

from tests.unit.test_render_support import (
    cpu_inputs,
    env_of,
    example_md_doc,
    gpu_inputs,
    inputs_for,
)


def _pod(dep: dict) -> dict:
    return dep["spec"]["template"]["spec"]


def _serving(dep: dict) -> dict:
    return _pod(dep)["containers"][0]


def test_deployment_runs_on_the_chosen_pool_with_its_selector_and_tolerations() -> None:
    inputs = gpu_inputs()
    pod = _pod(render_deployment(inputs))
    assert pod["nodeSelector"] == {"wattserve.dev/pool": "gpu-h100"}
    assert {"key": "wattserve.dev/pool", "operator": "Equal", "value": "gpu-h100",
            "effect": "NoSchedule"} in pod["tolerations"]
    assert {"key": "nvidia.com/gpu", "operator": "Exists",
            "effect": "NoSchedule"} in pod["tolerations"]


def test_gpu_pool_requests_the_accelerator_resource_by_tensor_parallel_size() -> None:
    inputs = gpu_inputs()
    res = _serving(render_deployment(inputs))["resources"]
    tp = str(inputs.candidate.tensor_parallel)
    assert res["limits"]["nvidia.com/gpu"] == tp
    assert res["requests"]["nvidia.com/gpu"] == tp
    assert res["requests"]["cpu"] == str(inputs.candidate.cpu_request)
    assert res["limits"]["memory"] == f"{inputs.candidate.memory_request_gib}Gi"
    assert "cpu" not in res["limits"]


def test_gpu_resource_name_comes_from_the_pool_accelerator() -> None:
    inputs = gpu_inputs()
    acc = replace(inputs.pool.spec.accelerator, resource_name="amd.com/gpu")
    pool = replace(inputs.pool, spec=replace(inputs.pool.spec, accelerator=acc))
    res = _serving(render_deployment(replace(inputs, pool=pool)))["resources"]
    assert "amd.com/gpu" in res["limits"] and "nvidia.com/gpu" not in res["limits"]


def test_cpu_pool_gets_guaranteed_cpu_and_memory_and_no_gpu() -> None:
    inputs = cpu_inputs()
    res = _serving(render_deployment(inputs))["resources"]
    cpu = str(inputs.candidate.cpu_request)
    assert res["requests"]["cpu"] == res["limits"]["cpu"] == cpu
    assert res["requests"]["memory"] == res["limits"]["memory"]
    assert not any("gpu" in key for key in res["limits"])


def test_replicas_come_from_the_caller_not_the_plan() -> None:
    assert render_deployment(cpu_inputs(replicas=5))["spec"]["replicas"] == 5


def test_probes_hit_the_health_endpoint_on_the_serving_port() -> None:
    container = _serving(render_deployment(cpu_inputs()))
    port = next(p for p in container["ports"] if p["name"] == "http")
    assert port["containerPort"] == contract.SERVING_PORT
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert container[probe]["httpGet"] == {"path": contract.HEALTH_PATH, "port": "http"}


def test_serving_env_carries_engine_threads_context_and_pool_power() -> None:
    inputs = cpu_inputs()
    env = env_of(_serving(render_deployment(inputs)))
    assert env[contract.ENV_ENGINE] == "llamacpp"
    assert env[contract.ENV_TASK] == "chat"
    assert env[contract.ENV_THREADS] == str(inputs.candidate.threads)
    assert env[contract.ENV_CONTEXT_LENGTH] == "2048"
    assert env[contract.ENV_MODEL_NAME] == "smollm2-135m-instruct"
    assert env[contract.ENV_MODEL_PATH] == "/models/SmolLM2-135M-Instruct.Q4_1.gguf"
    assert env[contract.ENV_POOL] == "cpu-general"
    assert env[contract.ENV_NAMESPACE] == "team-a"
    assert env[contract.ENV_MODEL_DEPLOYMENT] == "smollm2-135m"
    assert env[contract.ENV_NODE_IDLE_WATTS] == "30"
    assert env[contract.ENV_NODE_MAX_WATTS] == "90"
    assert env[contract.ENV_NODE_CPUS] == "16"
    assert env[contract.ENV_PORT] == str(contract.SERVING_PORT)
    assert contract.ENV_GPU_COUNT not in env


def test_an_embedding_model_is_served_as_one_on_a_cpu_pool() -> None:
    inputs = inputs_for(example_md_doc("embedding-minilm.yaml"))
    env = env_of(_serving(render_deployment(inputs)))
    assert (env[contract.ENV_TASK], env[contract.ENV_ENGINE]) == ("embedding", "llamacpp")
    assert env[contract.ENV_MODEL_PATH].endswith(".gguf")  # llama.cpp reads GGUF only


def test_gpu_env_has_the_gpu_count() -> None:
    inputs = gpu_inputs()
    env = env_of(_serving(render_deployment(inputs)))
    assert env[contract.ENV_ENGINE] == "vllm"
    assert env[contract.ENV_GPU_COUNT] == str(inputs.candidate.tensor_parallel)


def test_the_parallel_setting_reaches_llamacpp_replicas_only() -> None:
    assert contract.ENV_PARALLEL not in env_of(_serving(render_deployment(cpu_inputs())))
    settings = replace(RenderSettings(), parallel=16)
    cpu = replace(cpu_inputs(), settings=settings)
    assert env_of(_serving(render_deployment(cpu)))[contract.ENV_PARALLEL] == "16"
    gpu = replace(gpu_inputs(), settings=settings)
    assert contract.ENV_PARALLEL not in env_of(_serving(render_deployment(gpu)))


def test_labels_on_deployment_pods_and_service_name_md_pool_and_engine() -> None:
    inputs = cpu_inputs()
    dep, svc = render_deployment(inputs), render_service(inputs)
    for labels in (dep["metadata"]["labels"], dep["spec"]["template"]["metadata"]["labels"],
                   svc["metadata"]["labels"]):
        assert labels[contract.LABEL_K8S_MODEL_DEPLOYMENT] == "smollm2-135m"
        assert labels[contract.LABEL_K8S_POOL] == "cpu-general"
        assert labels[contract.LABEL_K8S_ENGINE] == "llamacpp"
        assert labels[contract.LABEL_K8S_MANAGED_BY] == "wattserve"
        assert labels["app.kubernetes.io/instance"] == "smollm2-135m"


def test_selector_excludes_pool_and_engine_so_replacement_keeps_it_immutable() -> None:
    cpu, gpu = render_deployment(cpu_inputs()), render_deployment(gpu_inputs())
    sel = cpu["spec"]["selector"]["matchLabels"]
    assert sel == selector_labels("smollm2-135m")
    assert contract.LABEL_K8S_POOL not in sel and contract.LABEL_K8S_ENGINE not in sel
    tmpl = cpu["spec"]["template"]["metadata"]["labels"]
    assert sel.items() <= tmpl.items()
    assert gpu["spec"]["selector"]["matchLabels"].items() <= \
        gpu["spec"]["template"]["metadata"]["labels"].items()


def test_children_are_owned_by_the_model_deployment_as_controller() -> None:
    for obj in desired_children(cpu_inputs()):
        (ref,) = obj["metadata"]["ownerReferences"]
        assert ref == {"apiVersion": "wattserve.dev/v1alpha1", "kind": "ModelDeployment",
                       "name": "smollm2-135m", "uid": "uid-1", "controller": True,
                       "blockOwnerDeletion": True}
        assert obj["metadata"]["namespace"] == "team-a"


def test_pods_have_prometheus_scrape_annotations() -> None:
    ann = render_deployment(cpu_inputs())["spec"]["template"]["metadata"]["annotations"]
    assert ann == {"prometheus.io/scrape": "true", "prometheus.io/port": "8000",
                   "prometheus.io/path": "/metrics"}


def test_service_exposes_the_openai_port_and_selects_the_pods() -> None:
    inputs = cpu_inputs()
    svc = render_service(inputs)
    assert svc["spec"]["selector"] == selector_labels("smollm2-135m")
    (port,) = svc["spec"]["ports"]
    assert port["port"] == contract.SERVING_PORT and port["targetPort"] == "http"


def test_images_and_pull_policy_come_from_settings() -> None:
    settings = RenderSettings(image_cpu="reg/cpu:1", image_gpu="reg/gpu:2",
                              pull_policy_cpu="Always")
    cpu = _serving(render_deployment(cpu_inputs(settings=settings)))
    gpu = _serving(render_deployment(gpu_inputs(settings=settings)))
    assert (cpu["image"], cpu["imagePullPolicy"]) == ("reg/cpu:1", "Always")
    assert (gpu["image"], gpu["imagePullPolicy"]) == ("reg/gpu:2", "IfNotPresent")


def test_deployment_backend_renders_a_deployment_and_a_service() -> None:
    kinds = [obj["kind"] for obj in desired_children(cpu_inputs())]
    assert kinds == ["Deployment", "Service"]


def test_rendering_is_deterministic() -> None:
    assert desired_children(cpu_inputs()) == desired_children(cpu_inputs())


def test_a_cpu_replica_is_seen_ready_within_a_second_of_loading() -> None:
    # A replica woken from zero has requests held for it: a 10 s probe tick was the whole of
    # the measured cold start on the real node (docs/benchmarks-activator.md).
    container = _serving(render_deployment(cpu_inputs()))
    assert container["startupProbe"]["periodSeconds"] == 1
    assert container["readinessProbe"]["periodSeconds"] == 1
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 600  # still 10 min to load


def test_dotted_and_long_model_deployment_names_render_children_the_api_server_takes() -> None:
    import re

    subdomain = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    dns1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
    label = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
    for name in ("llama-3.1-8b", "v2.smollm2", "m" * 120 + ".x"):
        doc = example_md_doc("smollm2-135m.yaml")
        doc["metadata"]["name"] = name
        for child in desired_children(inputs_for(doc)):
            meta = child["metadata"]
            if child["kind"] == "Service":  # a Service name is a DNS-1035 label
                assert dns1035.match(meta["name"]) and len(meta["name"]) <= 63, meta["name"]
            else:
                assert subdomain.match(meta["name"]) and len(meta["name"]) <= 253
            for value in meta["labels"].values():
                assert label.match(value) and len(value) <= 63, value
