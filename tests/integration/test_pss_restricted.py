"""Every rendered serving pod is admitted under the restricted Pod Security Standard.

The real kube-apiserver (its PodSecurity admission) judges: each pod template becomes a
Pod created with --dry-run=server in a namespace labelled
pod-security.kubernetes.io/enforce=restricted, and the Deployment itself is applied there
with warn=restricted (no "would violate PodSecurity" warning allowed).
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from kubeutil import Cluster
from wattserve.api.types import Backend
from wattserve.render import RenderSettings, desired_children

from tests.unit.factories import EXAMPLES
from tests.unit.test_render_support import example_md_doc, inputs_for

SETTINGS = {
    "default": RenderSettings(),
    "api-keys+hf-token": RenderSettings(api_key_secret="keys", hf_token_secret="hf"),
    "cache-pvc": RenderSettings(model_cache_pvc="model-cache"),
}
SOURCES = {
    "example": None,
    "hf": "hf://HuggingFaceTB/SmolLM2-135M-Instruct-GGUF",
    "pvc": "pvc://weights/llama/8b",
}
MODELS = sorted(p.name for p in (EXAMPLES / "models").glob("*.yaml"))


def _children(model: str, source: str | None, settings: RenderSettings,
              namespace: str) -> list[dict[str, Any]]:
    doc = example_md_doc(model, namespace=namespace)
    if source is not None:
        doc["spec"]["model"]["source"] = source
    return desired_children(inputs_for(doc, settings=settings))


def _pod_templates(children: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for child in children:
        if child["kind"] == "Deployment":
            out.append(("deployment", child["spec"]["template"]))
        elif child["kind"] == "RayService":
            cluster = child["spec"]["rayClusterConfig"]
            out.append(("ray-head", cluster["headGroupSpec"]["template"]))
            out += [("ray-worker", g["template"]) for g in cluster["workerGroupSpecs"]]
    return out


@pytest.fixture
def restricted(kube_cluster: Cluster, namespace: str) -> str:
    kube_cluster.kubectl("label", "namespace", namespace,
                         "pod-security.kubernetes.io/enforce=restricted",
                         "pod-security.kubernetes.io/warn=restricted", "--overwrite")
    return namespace


def _admit_pod(cluster: Cluster, namespace: str, template: dict[str, Any],
               name: str) -> tuple[bool, str]:
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": namespace,
                        "labels": template.get("metadata", {}).get("labels", {})},
           "spec": template["spec"]}
    proc = cluster.kubectl("create", "--dry-run=server", "-f", "-", input=yaml.safe_dump(pod),
                           check=False)
    return proc.returncode == 0, proc.stderr


@pytest.mark.integration
@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("source", list(SOURCES))
@pytest.mark.parametrize("settings", list(SETTINGS))
def test_deployment_pods_pass_restricted(kube_cluster: Cluster, restricted: str, model: str,
                                         source: str, settings: str) -> None:
    children = _children(model, SOURCES[source], SETTINGS[settings], restricted)
    deployments = [c for c in children if c["kind"] == "Deployment"]
    if not deployments:
        pytest.skip(f"{model} renders a RayService (see the Ray test below)")
    for kind, template in _pod_templates(deployments):
        ok, err = _admit_pod(kube_cluster, restricted, template, f"pss-{kind}")
        assert ok, err  # before: fetch-model had no securityContext -> forbidden
    for dep in deployments:
        proc = kube_cluster.kubectl("apply", "--dry-run=server", "-f", "-",
                                    input=yaml.safe_dump(dep), check=False)
        assert proc.returncode == 0, proc.stderr
        assert "PodSecurity" not in proc.stderr, proc.stderr


@pytest.mark.integration
def test_rayservice_pods_pass_restricted(kube_cluster: Cluster, restricted: str) -> None:
    doc = example_md_doc("smollm2-135m.yaml", namespace=restricted)
    doc["spec"]["backend"] = Backend.RAYSERVICE.value
    children = desired_children(inputs_for(doc))
    templates = _pod_templates(children)
    assert "ray-head" in {kind for kind, _ in templates}, [c["kind"] for c in children]
    failures = []
    for kind, template in templates:
        ok, err = _admit_pod(kube_cluster, restricted, template, f"pss-{kind}")
        if not ok:
            failures.append(f"{kind}: {err}")
    assert not failures, failures
    # The Ray NetworkPolicy child is one the real API server accepts.
    (policy,) = [c for c in children if c["kind"] == "NetworkPolicy"]
    proc = kube_cluster.kubectl("apply", "--dry-run=server", "-f", "-",
                                input=yaml.safe_dump(policy), check=False)
    assert proc.returncode == 0, proc.stderr
