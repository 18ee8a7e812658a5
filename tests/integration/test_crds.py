"""The CRDs install on a real API server, explain themselves, accept the examples and reject
invalid ModelDeployments with messages that name the offending field."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubeutil import Cluster, wait_for

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CRD_DIR = REPO / "crds"
EXAMPLES = REPO / "examples"
CRD_NAMES = ("modeldeployments.wattserve.dev", "servingpools.wattserve.dev")


def _crd_files() -> list[Path]:
    return sorted(p for p in CRD_DIR.glob("*.y*ml") if p.is_file())


def _example_files() -> list[Path]:
    files = [EXAMPLES / "pools.yaml", *sorted((EXAMPLES / "models").glob("*.y*ml"))]
    return [f for f in files if f.is_file()]


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


@pytest.fixture(scope="module")
def crds(kube_cluster: Cluster) -> Cluster:
    files = _crd_files()
    assert files, f"no CRD manifests in {CRD_DIR}"
    kube_cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD_DIR))
    for name in CRD_NAMES:
        kube_cluster.kubectl(
            "wait", "--for=condition=Established", f"crd/{name}", "--timeout=60s", timeout=90
        )
    # Discovery can lag a moment behind Established.
    wait_for(
        lambda: kube_cluster.kubectl("explain", "modeldeployment", check=False).returncode == 0,
        timeout=30,
        what="ModelDeployment in API discovery",
    )
    return kube_cluster


def test_crds_apply_and_are_established(crds: Cluster) -> None:
    for name in CRD_NAMES:
        crd = crds.get_json("crd", name)
        conds = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
        assert conds.get("Established") == "True", conds
        assert conds.get("NamesAccepted") == "True", conds
    scopes = {n: crds.get_json("crd", n)["spec"]["scope"] for n in CRD_NAMES}
    assert scopes == {CRD_NAMES[0]: "Namespaced", CRD_NAMES[1]: "Cluster"}


def test_explain_shows_descriptions(crds: Cluster) -> None:
    out = crds.kubectl("explain", "modeldeployment.spec.slo").stdout
    assert "DESCRIPTION" in out
    assert "latencyP95Ms" in out
    description = out.split("DESCRIPTION:", 1)[1].split("FIELDS:", 1)[0].strip()
    assert description and "<empty>" not in description, out


def test_explain_gives_the_units_of_status_figures(crds: Cluster) -> None:
    out = crds.kubectl("explain", "modeldeployment.status.placement.joulesPerToken").stdout
    description = out.split("DESCRIPTION:", 1)[1].strip()
    assert "joules" in description and "<empty>" not in description, out


def test_wide_listing_shows_the_slo_beside_the_p95(crds: Cluster, namespace: str) -> None:
    example = EXAMPLES / "models" / "smollm2-135m.yaml"
    doc = next(d for d in _docs(example) if d.get("kind") == "ModelDeployment")
    crds.kubectl("apply", "-n", namespace, "-f", str(example))
    name, slo = doc["metadata"]["name"], doc["spec"]["slo"]["latencyP95Ms"]
    narrow = crds.kubectl("get", "md", name, "-n", namespace).stdout.splitlines()
    wide = crds.kubectl("get", "md", name, "-n", namespace, "-o", "wide").stdout.splitlines()
    assert "SLO-P95" not in narrow[0], narrow
    head = wide[0].split()
    for column in ("P95", "SLO-P95", "OBJECTIVE", "ACCELERATOR", "READY-REPLICAS", "DEGRADED"):
        assert column in head, wide
    row = wide[1].split()  # no operator here: the status columns are empty
    assert str(slo) in row and doc["spec"].get("objective", "cost") in row, wide


@pytest.mark.parametrize("example", _example_files(), ids=lambda p: p.name)
def test_examples_are_accepted(crds: Cluster, namespace: str, example: Path) -> None:
    proc = crds.kubectl(
        "apply", "--dry-run=server", "-n", namespace, "-f", str(example), check=False
    )
    assert proc.returncode == 0, f"{example.name} rejected:\n{proc.stderr}"


def test_there_are_examples() -> None:
    assert (EXAMPLES / "pools.yaml").is_file(), "examples/pools.yaml missing"
    assert list((EXAMPLES / "models").glob("*.y*ml")), "no examples/models/*.yaml"


def _base_model_deployment() -> dict[str, Any]:
    for path in sorted((EXAMPLES / "models").glob("*.y*ml")):
        for doc in _docs(path):
            if doc.get("kind") == "ModelDeployment":
                doc["metadata"] = {"name": "invalid-md"}
                doc.pop("status", None)
                return doc
    raise AssertionError("no ModelDeployment in examples/models/ to derive invalid ones from")


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(doc: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        node = doc
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value

    return mutate


def _drop(path: str) -> Callable[[dict[str, Any]], None]:
    def mutate(doc: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        node = doc
        for key in parents:
            node = node[key]
        node.pop(leaf, None)

    return mutate


def _min_over_max(doc: dict[str, Any]) -> None:
    _set("spec.scaling.minReplicas", 5)(doc)
    _set("spec.scaling.maxReplicas", 2)(doc)


INVALID: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("minReplicas>maxReplicas", _min_over_max, "minReplicas"),
    ("negative-latency", _set("spec.slo.latencyP95Ms", -5), "latencyP95Ms"),
    ("unknown-quantization", _set("spec.model.quantization", "int3-bogus"), "quantization"),
    ("malformed-parameters", _set("spec.model.parameters", "lots"), "parameters"),
    ("missing-model", _drop("spec.model"), "model"),
]


@pytest.mark.parametrize(("case", "mutate", "field"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_model_deployments_are_rejected(
    crds: Cluster, namespace: str, case: str, mutate: Callable[[dict[str, Any]], None], field: str
) -> None:
    doc = copy.deepcopy(_base_model_deployment())
    valid = crds.kubectl(
        "apply",
        "--dry-run=server",
        "-n",
        namespace,
        "-f",
        "-",
        input=yaml.safe_dump(doc),
        check=False,
    )
    assert valid.returncode == 0, f"the unmodified base is rejected:\n{valid.stderr}"
    mutate(doc)
    proc = crds.kubectl(
        "apply",
        "--dry-run=server",
        "-n",
        namespace,
        "-f",
        "-",
        input=yaml.safe_dump(doc),
        check=False,
    )
    assert proc.returncode != 0, f"{case}: accepted but should be rejected"
    assert "invalid" in proc.stderr.lower() or "required" in proc.stderr.lower(), proc.stderr
    assert field in proc.stderr, f"{case}: message does not name {field!r}:\n{proc.stderr}"
