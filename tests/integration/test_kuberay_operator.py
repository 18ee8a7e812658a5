"""RayServices rendered by wattserve against the real KubeRay operator (v1.5.0, built from its
Go module by the dev cluster's build) and its CRDs, on the dev cluster.

The control-plane half of KubeRay runs for real: CRD validation, the RayService and
RayCluster controllers, the pods and Services they create, Pod Security admission of those
pods. The pods themselves run on kwok nodes (no containers), so Ray never starts and the
Serve application is never deployed: serving through Ray pods needs the real node
(docs/serving.md says what remains).
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubeutil import Cluster, wait_for
from wattserve import contract
from wattserve.devcluster.build import go_env
from wattserve.devcluster.components import COMPONENT_BY_NAME, binary_paths
from wattserve.render import render_rayservice
from wattserve.render.meta import label_value
from wattserve.render.rayservice import rayservice_name

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.unit.test_render_support import example_md_doc, inputs_for  # noqa: E402

pytestmark = pytest.mark.integration
KUBERAY = COMPONENT_BY_NAME["kuberay"]
MODULE = f"github.com/ray-project/kuberay/ray-operator@{KUBERAY.version}"
LONG_NAME = "smollm2-135m-instruct-served-through-kuberay-conformance-check"


def _crd_dir() -> Path:
    """The CRDs of the same module version the operator was built from (module cache)."""
    go = shutil.which("go")
    if go is None:
        pytest.fail("`go` not found: needed to locate KubeRay's CRDs", pytrace=False)
    proc = subprocess.run([go, "mod", "download", "-json", MODULE], capture_output=True,
                          text=True, timeout=300, env=go_env(),
                          cwd=KUBERAY.gomod_dir, check=False)
    if proc.returncode != 0:
        pytest.fail(f"go mod download {MODULE}: {proc.stderr[-500:]}", pytrace=False)
    return Path(json.loads(proc.stdout)["Dir"]) / "config" / "crd" / "bases"


@contextlib.contextmanager
def running_kuberay(cluster: Cluster, log_dir: Path, *extra_args: str) -> Iterator[Cluster]:
    """KubeRay's CRDs applied and its operator running on this host against ``cluster``
    (``extra_args``: more operator flags); stopped on exit."""
    binary = binary_paths()["kuberay-operator"]
    if not os.access(binary, os.X_OK):
        pytest.fail(f"no KubeRay operator at {binary}: run scripts/setup.sh 60", pytrace=False)
    for crd in sorted(_crd_dir().glob("ray.io_*.yaml")):
        cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crd),
                        timeout=120)
    for crd in ("rayclusters", "rayservices"):
        wait_for(lambda crd=crd: any(
            c.get("type") == "Established" and c.get("status") == "True"
            for c in cluster.get_json("crd", f"{crd}.ray.io").get("status", {})
            .get("conditions") or ()), timeout=60, what=f"CRD {crd}.ray.io Established")
    log_path = log_dir / "operator.log"
    log = open(log_path, "wb")  # noqa: SIM115 - owned by the process
    proc = subprocess.Popen(
        [str(binary), "--metrics-addr=0", "--health-probe-bind-address=0",
         "--enable-leader-election=false", "--log-stdout-encoder=console", *extra_args],
        env=cluster.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        time.sleep(2)
        if proc.poll() is not None:
            pytest.fail(f"KubeRay operator exited: {log_path.read_text()[-2000:]}",
                        pytrace=False)
        cluster.extra["kuberay_log"] = log_path
        yield cluster
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()


@pytest.fixture(scope="module", name="kuberay")
def kuberay_fixture(kube_cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
                    ) -> Iterator[Cluster]:
    with running_kuberay(kube_cluster, tmp_path_factory.mktemp("kuberay")) as cluster:
        yield cluster


def _rendered(namespace: str, name: str, replicas: int) -> dict[str, Any]:
    doc = example_md_doc("smollm2-135m.yaml", namespace=namespace)
    doc["metadata"]["name"] = name
    doc["spec"]["backend"] = "rayservice"
    doc["spec"]["scaling"] = {"minReplicas": 1, "maxReplicas": 4, "scaleDownDelaySeconds": 60}
    rs = copy.deepcopy(render_rayservice(inputs_for(doc, replicas=replicas)))
    # No ModelDeployment exists in this test: without an owner the GC leaves it alone.
    rs["metadata"].pop("ownerReferences", None)
    return rs


def _restricted_namespace(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl("label", "namespace", namespace, "--overwrite",
                    "pod-security.kubernetes.io/enforce=restricted")


def _ray_cluster(cluster: Cluster, namespace: str) -> dict[str, Any] | None:
    items = cluster.get_json("rayclusters.ray.io", "-n", namespace)["items"]
    return items[0] if len(items) == 1 else None


def _pods(cluster: Cluster, namespace: str, node_type: str) -> list[dict[str, Any]]:
    return list(cluster.get_json("pods", "-n", namespace, "-l",
                                 f"ray.io/node-type={node_type}")["items"])


def _invalid_events(cluster: Cluster, namespace: str) -> list[str]:
    events = cluster.get_json("events", "-n", namespace)["items"]
    return [f"{e.get('reason')}: {e.get('message')}" for e in events
            if str(e.get("reason", "")).startswith(("Invalid", "FailedCreate", "FailedToCreate"))]


def _diagnose(cluster: Cluster, namespace: str) -> str:
    log = cluster.extra.get("kuberay_log")
    tail = Path(log).read_text()[-3000:] if log else ""
    return f"events: {_invalid_events(cluster, namespace)}\noperator log tail:\n{tail}"


def test_kuberay_accepts_the_rendered_rayservice_and_builds_its_cluster(
        kuberay: Cluster, namespace: str) -> None:
    _restricted_namespace(kuberay, namespace)
    rs = _rendered(namespace, LONG_NAME, replicas=2)
    assert rs["metadata"]["name"] == rayservice_name(LONG_NAME) != LONG_NAME
    # strict: a field KubeRay's CRD does not know fails here instead of being pruned.
    kuberay.apply(rs, "-n", namespace, "--validate=strict")

    raycluster = wait_for(lambda: _ray_cluster(kuberay, namespace), timeout=60,
                          what="KubeRay's RayCluster for the RayService")
    assert raycluster["spec"]["enableInTreeAutoscaling"] is True
    assert raycluster["spec"]["autoscalerOptions"]["idleTimeoutSeconds"] == 60
    (group,) = raycluster["spec"]["workerGroupSpecs"]
    assert (group["minReplicas"], group["replicas"], group["maxReplicas"]) == (1, 2, 4)

    # Pod Security admission (restricted) let KubeRay's pods in: head with the autoscaler
    # sidecar, one worker per replica.
    try:
        heads = wait_for(lambda: _pods(kuberay, namespace, "head") or None, timeout=60,
                         what="the Ray head pod")
        workers = wait_for(lambda: (lambda p: p if len(p) == 2 else None)(
            _pods(kuberay, namespace, "worker")), timeout=60, what="2 Ray worker pods")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{_diagnose(kuberay, namespace)}") from exc
    head = heads[0]["spec"]
    names = [c["name"] for c in head["containers"]]
    assert names[0] == "ray-head" and "autoscaler" in names
    for pod in [heads[0], *workers]:
        ray = pod["spec"]["containers"][0]
        start = " ".join(ray.get("command", []) + ray.get("args", []))
        assert "ray start" in start and "KUBERAY_GEN_RAY_START_CMD" not in start, start
        for container in pod["spec"]["containers"] + pod["spec"].get("initContainers", []):
            sc = container.get("securityContext") or {}
            assert sc.get("allowPrivilegeEscalation") is False, container["name"]
    assert workers[0]["spec"]["nodeSelector"] == {"wattserve.dev/pool": "cpu-general"}
    # KubeRay keeps the template's labels: the operator's pod watch and health see the pods.
    for pod in [heads[0], *workers]:
        labels = pod["metadata"]["labels"]
        assert labels[contract.LABEL_K8S_MODEL_DEPLOYMENT] == label_value(LONG_NAME)
        assert labels["app.kubernetes.io/managed-by"] == "wattserve"

    services = kuberay.get_json("services", "-n", namespace)["items"]
    head_svc = next(s for s in services if s["metadata"]["name"].endswith("head-svc"))
    ports = {p["name"]: p["port"] for p in head_svc["spec"]["ports"]}
    assert "dashboard" in ports and 10001 not in ports.values()
    assert _invalid_events(kuberay, namespace) == []

    # The ModelDeployment's own name, as rendered before: KubeRay refuses it and serves
    # nothing (which is why the renderer shortens it).
    as_before = copy.deepcopy(rs)
    as_before["metadata"]["name"] = LONG_NAME
    kuberay.apply(as_before, "-n", namespace)
    refused = wait_for(lambda: [e for e in _invalid_events(kuberay, namespace)
                                if e.startswith("InvalidRayServiceMetadata")], timeout=60,
                       what="KubeRay's InvalidRayServiceMetadata event")
    assert "47" in refused[0] or "long" in refused[0].lower(), refused
    assert _ray_cluster(kuberay, namespace) is not None  # still only the one cluster


def test_kuberay_ignores_the_rayservices_worker_count_so_scaling_goes_through_serve(
        kuberay: Cluster, namespace: str) -> None:
    """Why wattserve scales with in-tree autoscaling and Serve's num_replicas: KubeRay
    leaves worker replicas out of its cluster hash, so changing them in the RayService
    neither resizes the live RayCluster nor rolls a new one."""
    rs = _rendered(namespace, "smollm2", replicas=1)
    kuberay.apply(rs, "-n", namespace)
    first = wait_for(lambda: _ray_cluster(kuberay, namespace), timeout=60,
                     what="KubeRay's RayCluster")
    wait_for(lambda: len(_pods(kuberay, namespace, "worker")) == 1 or None, timeout=60,
             what="1 Ray worker pod")

    bigger = copy.deepcopy(rs)
    bigger["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["replicas"] = 3
    serve = yaml.safe_load(bigger["spec"]["serveConfigV2"])
    serve["applications"][0]["deployments"][0]["num_replicas"] = 3
    bigger["spec"]["serveConfigV2"] = yaml.safe_dump(serve, sort_keys=True)
    kuberay.apply(bigger, "-n", namespace)
    time.sleep(10)  # several KubeRay reconciles

    live = _ray_cluster(kuberay, namespace)
    assert live is not None, "KubeRay rolled a second RayCluster"
    assert live["metadata"]["name"] == first["metadata"]["name"]
    assert live["spec"]["workerGroupSpecs"][0]["replicas"] == 1  # not 3: ignored
    assert len(_pods(kuberay, namespace, "worker")) == 1


def test_restricted_admission_is_enforced_so_the_security_check_means_something(
        kuberay: Cluster, namespace: str) -> None:
    """The same RayService without the head's securityContext: Pod Security admission
    rejects KubeRay's head pod (so the first test's admitted pods are really compliant)."""
    _restricted_namespace(kuberay, namespace)
    rs = _rendered(namespace, "insecure", replicas=1)
    head = rs["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]
    del head["securityContext"]
    del head["containers"][0]["securityContext"]
    kuberay.apply(rs, "-n", namespace)
    failed = wait_for(lambda: [e for e in _invalid_events(kuberay, namespace)
                               if e.startswith("FailedToCreateHeadPod")], timeout=60,
                      what="KubeRay's FailedToCreateHeadPod event")
    assert "restricted" in failed[0] or "PodSecurity" in failed[0], failed
    assert _pods(kuberay, namespace, "head") == []
