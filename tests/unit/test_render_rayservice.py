"""RayService rendering: Serve config, worker group on the pool, replicas."""

from __future__ import annotations

import re

import pytest
import yaml
from wattserve import contract
from wattserve.render import CHILD_KINDS, RenderSettings, desired_children, render_rayservice
from wattserve.render.rayservice import rayservice_name
from wattserve.render.settings import (
    ENV_KUBERAY_NAMESPACE_LABELS,
    ENV_KUBERAY_POD_LABELS,
    ENV_SERVING_NETWORK_POLICY,
    SettingsError,
    settings_from_env,
)

from tests.unit.test_render_support import example_md_doc, inputs_for


def _inputs(file: str, **kw: object):
    doc = example_md_doc(file)
    doc["spec"]["backend"] = "rayservice"
    return inputs_for(doc, **kw)


def test_rayservice_backend_renders_a_rayservice_and_its_network_policy() -> None:
    objs = desired_children(_inputs("smollm2-135m.yaml"))
    assert [(o["apiVersion"], o["kind"]) for o in objs] == [
        ("ray.io/v1", "RayService"), ("networking.k8s.io/v1", "NetworkPolicy")]
    for obj in objs:
        assert obj["metadata"]["ownerReferences"][0]["controller"] is True
        assert obj["metadata"]["labels"] == objs[0]["metadata"]["labels"]
    owned = {(k.api_version, k.kind) for k in CHILD_KINDS.values()}
    assert {(o["apiVersion"], o["kind"]) for o in objs} <= owned


def _policy(**kw: object) -> dict:
    (policy,) = [o for o in desired_children(_inputs("smollm2-135m.yaml", **kw))
                 if o["kind"] == "NetworkPolicy"]
    return policy


def _head_labels(**kw: object) -> dict[str, str]:
    rs = render_rayservice(_inputs("smollm2-135m.yaml", **kw))
    return rs["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["metadata"]["labels"]


def _selects(selector: dict, labels: dict[str, str]) -> bool:
    return set(selector["matchLabels"].items()) <= set(labels.items())


def test_network_policy_selects_the_ray_pods_and_only_them() -> None:
    spec = _policy()["spec"]
    assert spec["policyTypes"] == ["Ingress"]
    rs = render_rayservice(_inputs("smollm2-135m.yaml"))
    cluster = rs["spec"]["rayClusterConfig"]
    for template in [cluster["headGroupSpec"]["template"],
                     *(g["template"] for g in cluster["workerGroupSpecs"])]:
        assert _selects(spec["podSelector"], template["metadata"]["labels"])
    other = _head_labels() | {contract.LABEL_K8S_MODEL_DEPLOYMENT: "another-model"}
    assert not _selects(spec["podSelector"], other)


def _allowed_ports(spec: dict, peer_pod: dict[str, str], peer_ns: dict[str, str],
                   same_namespace: bool) -> set[int | str]:
    """Ports a peer may reach under the policy (\"all\" when a rule has no ports)."""
    out: set[int | str] = set()
    for rule in spec["ingress"]:
        peers = rule.get("from")
        if peers is not None:
            def matches(peer: dict) -> bool:
                if "namespaceSelector" in peer:
                    if not _selects(peer["namespaceSelector"], peer_ns):
                        return False
                elif not same_namespace:
                    return False
                return "podSelector" not in peer or _selects(peer["podSelector"], peer_pod)
            if not any(matches(p) for p in peers):
                continue
        ports = rule.get("ports")
        out |= {p["port"] for p in ports} if ports else {"all"}
    return out


def test_dashboard_only_from_kuberay_operator_gcs_only_from_own_pods_serve_from_anyone() -> None:
    spec = _policy()["spec"]
    kuberay = {"app.kubernetes.io/name": "kuberay-operator"}
    assert _allowed_ports(spec, kuberay, {"kubernetes.io/metadata.name": "ray-system"},
                          False) == {8265, contract.SERVING_PORT}
    stranger = {"app": "curl"}
    assert _allowed_ports(spec, stranger, {}, True) == {contract.SERVING_PORT}
    assert _allowed_ports(spec, stranger, {}, False) == {contract.SERVING_PORT}
    own = _head_labels()
    assert _allowed_ports(spec, own, {}, True) == {"all"} | {contract.SERVING_PORT}
    assert 10001 not in _allowed_ports(spec, kuberay, {}, False)  # Ray Client: nobody else


def test_kuberay_selectors_come_from_settings() -> None:
    settings = RenderSettings(kuberay_pod_labels=(("app", "kuberay"),),
                              kuberay_namespace_labels=(("team", "ray"),))
    spec = _policy(settings=settings)["spec"]
    assert _allowed_ports(spec, {"app": "kuberay"}, {"team": "ray"}, False) == {
        8265, contract.SERVING_PORT}
    assert 8265 not in _allowed_ports(spec, {"app": "kuberay"}, {"team": "web"}, False)
    assert 8265 not in _allowed_ports(
        spec, {"app.kubernetes.io/name": "kuberay-operator"}, {"team": "ray"}, False)


def test_chart_serving_policy_leaves_the_serve_port_to_its_peers() -> None:
    spec = _policy(settings=RenderSettings(serving_network_policy=True))["spec"]
    assert _allowed_ports(spec, {"app": "curl"}, {}, True) == set()
    assert settings_from_env({ENV_SERVING_NETWORK_POLICY: "1"}).serving_network_policy
    assert not settings_from_env({}).serving_network_policy


def test_serving_policy_in_other_namespaces_leaves_the_serve_port_open_here() -> None:
    """The chart renders its serving policy in serving.networkPolicy.namespaces only: a
    rayservice model elsewhere must stay reachable (its own policy was its only one, and
    admitted nobody on Serve's port: clients, the activator and Prometheus were cut off)."""
    namespace = _inputs("smollm2-135m.yaml").md.namespace
    elsewhere = settings_from_env({ENV_SERVING_NETWORK_POLICY: "team-x, team-y"})
    assert elsewhere.serving_network_policy_namespaces == {"team-x", "team-y"}
    spec = _policy(settings=elsewhere)["spec"]
    assert _allowed_ports(spec, {"app": "curl"}, {}, True) == {contract.SERVING_PORT}
    here = settings_from_env({ENV_SERVING_NETWORK_POLICY: f"team-x,{namespace}"})
    assert _allowed_ports(_policy(settings=here)["spec"], {"app": "curl"}, {}, True) == set()
    assert not settings_from_env({ENV_SERVING_NETWORK_POLICY: "false"}).serving_network_policy
    with pytest.raises(SettingsError, match="WATTSERVE_SERVING_NETWORK_POLICY: 'Team_A'"):
        settings_from_env({ENV_SERVING_NETWORK_POLICY: "Team_A"})


def test_kuberay_label_settings_parse_from_env_and_reject_bad_ones() -> None:
    env = {ENV_KUBERAY_POD_LABELS: "app=kuberay, tier=ctl",
           ENV_KUBERAY_NAMESPACE_LABELS: "kubernetes.io/metadata.name=ray-system"}
    got = settings_from_env(env)
    assert got.kuberay_pod_labels == (("app", "kuberay"), ("tier", "ctl"))
    assert got.kuberay_namespace_labels == (("kubernetes.io/metadata.name", "ray-system"),)
    assert settings_from_env({}).kuberay_pod_labels == (
        ("app.kubernetes.io/name", "kuberay-operator"),)
    assert settings_from_env({}).kuberay_namespace_labels == ()
    for bad in ("app", "=x", "app=bad value", "a b=c"):
        with pytest.raises(SettingsError, match=ENV_KUBERAY_POD_LABELS):
            settings_from_env({ENV_KUBERAY_POD_LABELS: bad})


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
    # a Serve replica asks for the worker's whole CPU request: one replica per worker pod
    cfg = yaml.safe_load(rs["spec"]["serveConfigV2"])
    actor = cfg["applications"][0]["deployments"][0]["ray_actor_options"]
    assert actor["num_cpus"] == inputs.candidate.cpu_request
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


def test_scaling_is_in_tree_autoscaling_within_the_spec_bounds() -> None:
    """KubeRay leaves worker replicas out of its cluster hash, so only the Ray autoscaler
    resizes a live cluster: it must be on, bounded by spec.scaling, releasing idle workers
    after the scale-down delay; the replica count itself goes to Serve's num_replicas."""
    doc = example_md_doc("smollm2-135m.yaml")
    doc["spec"]["backend"] = "rayservice"
    doc["spec"]["scaling"] = {"minReplicas": 1, "maxReplicas": 5, "scaleDownDelaySeconds": 90}
    rs = render_rayservice(inputs_for(doc, replicas=2))
    cluster = rs["spec"]["rayClusterConfig"]
    assert cluster["enableInTreeAutoscaling"] is True
    assert cluster["autoscalerOptions"]["idleTimeoutSeconds"] == 90
    (worker,) = cluster["workerGroupSpecs"]
    assert (worker["minReplicas"], worker["replicas"], worker["maxReplicas"]) == (1, 2, 5)
    cfg = yaml.safe_load(rs["spec"]["serveConfigV2"])
    assert cfg["applications"][0]["deployments"][0]["num_replicas"] == 2


def test_ray_containers_keep_kuberays_start_command() -> None:
    """A command without ray.io/overwrite-container-cmd gets wrapped by KubeRay, and its own
    ray start never runs: the Ray containers set neither command nor args."""
    cluster = render_rayservice(_inputs("smollm2-135m.yaml"))["spec"]["rayClusterConfig"]
    pods = [cluster["headGroupSpec"]["template"], cluster["workerGroupSpecs"][0]["template"]]
    for template in pods:
        for container in template["spec"]["containers"]:
            assert "command" not in container and "args" not in container


def test_long_or_invalid_names_become_names_kuberay_accepts() -> None:
    assert rayservice_name("smollm2-135m") == "smollm2-135m"
    long = "a-very-long-model-deployment-name-that-kuberay-would-refuse"
    for name in (long, "llama.3.1-8b", "x" * 47 + "y"):
        short = rayservice_name(name)
        assert len(short) <= 47 and re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", short), short
        assert rayservice_name(name) == short  # stable
    assert rayservice_name(long) != rayservice_name(long + "-2")
    doc = example_md_doc("smollm2-135m.yaml")
    doc["spec"]["backend"] = "rayservice"
    doc["metadata"]["name"] = long
    assert render_rayservice(inputs_for(doc))["metadata"]["name"] == rayservice_name(long)


def test_head_is_sized_for_the_pool_and_exposes_no_ray_client_port() -> None:
    cpu = render_rayservice(_inputs("smollm2-135m.yaml"))["spec"]["rayClusterConfig"]
    gpu_inputs = _inputs("llama-3.1-8b-high-load.yaml")
    gpu = render_rayservice(gpu_inputs)["spec"]["rayClusterConfig"]
    cpu_head = cpu["headGroupSpec"]["template"]["spec"]
    gpu_head = gpu["headGroupSpec"]["template"]["spec"]
    assert cpu_head["containers"][0]["resources"]["limits"]["memory"] == "2Gi"
    assert gpu_head["containers"][0]["resources"]["limits"]["memory"] == "4Gi"
    assert gpu_head["nodeSelector"] == {"wattserve.dev/pool": gpu_inputs.pool.name}
    ports = {p["containerPort"] for p in cpu_head["containers"][0]["ports"]}
    assert 10001 not in ports  # the Ray client runs arbitrary code: not in the head Service
    assert {6379, 8265} <= ports  # workers join the GCS; KubeRay talks to the dashboard


def test_every_ray_container_meets_the_restricted_pod_security_standard() -> None:
    cluster = render_rayservice(_inputs("llama-3.1-8b-high-load.yaml"))["spec"][
        "rayClusterConfig"]
    pods = [cluster["headGroupSpec"]["template"]["spec"],
            cluster["workerGroupSpecs"][0]["template"]["spec"]]
    for pod in pods:
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for container in pod["containers"]:
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"] == {"drop": ["ALL"]}
    sc = cluster["autoscalerOptions"]["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"] == {"drop": ["ALL"]}


def test_serve_config_validates_against_ray_serves_own_schema() -> None:
    """The real ray 2.60.0 ``ServeDeploySchema`` (what KubeRay's serveConfigV2 is submitted
    to), for a CPU and a GPU pool."""
    from ray.serve.schema import ServeDeploySchema

    for file in ("smollm2-135m.yaml", "llama-3.1-8b-high-load.yaml"):
        rs = render_rayservice(_inputs(file, replicas=3))
        schema = ServeDeploySchema.model_validate(yaml.safe_load(rs["spec"]["serveConfigV2"]))
        (app,) = schema.applications
        (dep,) = app.deployments
        assert dep.num_replicas == 3
        assert app.import_path == "wattserve_serving.ray_app:app"


def test_each_worker_advertises_exactly_one_replicas_resources_to_ray() -> None:
    """Ray's resources are set on the worker, not derived by KubeRay from the container (it
    would round millicores and read the limit): one Serve replica fills one worker, so a
    replica more makes the autoscaler add a worker, on CPU and GPU pools alike."""
    for file, params in (("smollm2-135m.yaml", {"num-cpus"}),
                         ("llama-3.1-8b-high-load.yaml", {"num-cpus", "num-gpus"})):
        rs = render_rayservice(_inputs(file))
        (worker,) = rs["spec"]["rayClusterConfig"]["workerGroupSpecs"]
        actor = yaml.safe_load(rs["spec"]["serveConfigV2"])["applications"][0][
            "deployments"][0]["ray_actor_options"]
        assert set(worker["rayStartParams"]) == params
        assert worker["rayStartParams"]["num-cpus"] == str(actor["num_cpus"])
        if "num-gpus" in params:
            assert worker["rayStartParams"]["num-gpus"] == str(actor["num_gpus"])


def test_cpu_ray_pods_use_the_ray_image_and_a_small_head() -> None:
    """CPU pools: the serving-cpu-ray image (KubeRay's probes need its wget) on head and
    workers; the head (no replicas) asks a quarter CPU and the autoscaler a tenth, so a
    2-vCPU node holds them and Serve workers; workers get Ray's own memory on top of the
    plan's. GPU pools keep the GPU image, a whole CPU for the head and the plan's memory."""
    settings = RenderSettings(image_cpu="reg/cpu:1", image_ray_cpu="reg/ray:1",
                              image_gpu="reg/gpu:1")
    cpu_inputs = _inputs("smollm2-135m.yaml", settings=settings)
    cpu = render_rayservice(cpu_inputs)["spec"]["rayClusterConfig"]
    head = cpu["headGroupSpec"]["template"]["spec"]["containers"][0]
    worker = cpu["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]
    assert head["image"] == worker["image"] == "reg/ray:1"
    assert head["resources"]["requests"]["cpu"] == "250m"
    assert cpu["autoscalerOptions"]["resources"]["requests"]["cpu"] == "100m"
    memory = f"{max(1, cpu_inputs.candidate.memory_request_gib) * 1024 + 512}Mi"
    assert worker["resources"]["requests"]["memory"] == memory
    assert worker["resources"]["limits"]["memory"] == memory
    gpu_inputs = _inputs("llama-3.1-8b-high-load.yaml", settings=settings)
    gpu = render_rayservice(gpu_inputs)["spec"]["rayClusterConfig"]
    gpu_head = gpu["headGroupSpec"]["template"]["spec"]["containers"][0]
    gpu_worker = gpu["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]
    assert gpu_head["image"] == gpu_worker["image"] == "reg/gpu:1"
    assert gpu_head["resources"]["requests"]["cpu"] == "1"
    assert gpu_worker["resources"]["requests"]["memory"] == \
        f"{max(1, gpu_inputs.candidate.memory_request_gib)}Gi"


def test_ray_cpu_image_setting_comes_from_env() -> None:
    assert settings_from_env({}).image_ray_cpu.startswith(
        "ghcr.io/wattserve/wattserve-serving-cpu-ray:")
    assert settings_from_env({"WATTSERVE_SERVING_IMAGE_RAY_CPU": "reg/r:2"}).image_ray_cpu \
        == "reg/r:2"


def test_both_ray_images_carry_the_wget_kuberays_probes_run() -> None:
    """KubeRay v1.5.0 injects probes `bash -c 'wget ... | grep success'` into Ray containers
    without their own: without wget every Ray pod stays unready."""
    from pathlib import Path

    from wattserve.images import load_definitions

    assert "wget" in load_definitions()["serving-cpu-ray"].debian
    gpu = (Path(__file__).resolve().parents[2] / "serving" / "Dockerfile.gpu").read_text()
    install = next(line for line in gpu.splitlines() if "apt-get install" in line)
    assert "wget" in install.split()
