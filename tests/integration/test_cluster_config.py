"""Dev-cluster configuration and CLI behaviour that needs no running cluster."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from wattserve.devcluster import build, cli, components, control_plane
from wattserve.devcluster.nodepools import PoolConfigError, load_pools, nodes_manifest


def test_default_pools_follow_the_conventions() -> None:
    pools = {p.name: p for p in load_pools()}
    assert {n: p.count for n, p in pools.items()} == {"cpu-general": 3, "gpu-l4": 2, "gpu-h100": 2}
    nodes = nodes_manifest(list(pools.values()))["items"]
    assert len(nodes) == 7
    for node in nodes:
        labels = node["metadata"]["labels"]
        pool = labels["wattserve.dev/pool"]
        taints = node["spec"]["taints"]
        assert {"key": "wattserve.dev/pool", "value": pool, "effect": "NoSchedule"} in taints
        assert labels["type"] == "kwok"
        assert node["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake"
        gpu_taint = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
        if pool == "cpu-general":
            assert node["status"]["capacity"] == {"cpu": "16", "memory": "64Gi", "pods": "110"}
            assert gpu_taint not in taints
        else:
            product = {"gpu-l4": "NVIDIA-L4", "gpu-h100": "NVIDIA-H100-80GB-HBM3"}[pool]
            gpus = {"gpu-l4": "4", "gpu-h100": "8"}[pool]
            assert labels["nvidia.com/gpu.product"] == product
            assert node["status"]["allocatable"]["nvidia.com/gpu"] == gpus
            assert gpu_taint in taints


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("pools: 3\n", "'pools' list"),
        ("pools:\n  - name: Bad_Name\n    capacity: {cpu: 1, memory: 1Gi}\n", "name"),
        ("pools:\n  - name: a\n    capacity: {cpu: 1}\n", "missing 'memory'"),
        ("pools:\n  - name: a\n    count: -1\n    capacity: {cpu: 1, memory: 1Gi}\n", "count"),
        (
            "pools:\n  - name: a\n    gpu: {count: 0, product: X}\n"
            "    capacity: {cpu: 1, memory: 1Gi}\n",
            "gpu.count",
        ),
        ("pools:\n  - name: a\n    capacity: {cpu: 1, memory: 1Gi}\n    colour: red\n", "colour"),
        ("pools: [\n", "not valid YAML"),
    ],
)
def test_bad_pool_files_are_named(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "pools.yaml"
    path.write_text(text)
    with pytest.raises(PoolConfigError, match=r".*") as err:
        load_pools(path)
    assert str(path) in str(err.value)
    assert fragment in str(err.value)


@pytest.mark.parametrize(
    "argv",
    [["frobnicate"], ["status", "-o", "xml"], ["up", "--pools", "/nonexistent.yaml"], []],
)
def test_cli_bad_input_is_one_line_exit_2(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.run(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("dev-cluster: ")
    assert "\n" not in err and "Traceback" not in err


def test_cli_bad_pools_file_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "pools.yaml"
    path.write_text("pools:\n  - name: a\n    capacity: {cpu: 1}\n")
    code = cli.run(
        ["--state-dir", str(tmp_path / "state"), "up", "--no-build", "--pools", str(path)]
    )
    assert code == 2
    assert "missing 'memory'" in capsys.readouterr().err


def test_status_of_a_stopped_cluster(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.run(["--state-dir", str(tmp_path), "status", "-o", "json"]) == 1
    assert '"running": false' in capsys.readouterr().out


def test_binaries_are_cached_by_version(tmp_path: Path) -> None:
    paths = components.binary_paths(tmp_path)
    assert paths["kube-apiserver"] == (
        tmp_path / "bin" / f"kubernetes-{components.KUBERNETES_VERSION}" / "kube-apiserver"
    )
    assert paths["etcd"].parent.name == f"etcd-{components.ETCD_VERSION}"
    assert set(paths) == {
        "etcd",
        "kwok",
        "helm",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kubectl",
        "kuberay-operator",
        "kubelet",
        "kube-proxy",
        "coredns",
    }


def test_go_modules_are_shipped() -> None:
    for comp in components.COMPONENTS:
        gomod = (comp.gomod_dir / "go.mod").read_text()
        assert (comp.gomod_dir / "go.sum").is_file()
        for pkg in comp.packages.values():
            assert pkg in gomod, f"{comp.name}: tool {pkg} not in go.mod"
    k8s = (components.GOMOD_ROOT / "kubernetes" / "go.mod").read_text()
    minor = components.KUBERNETES_VERSION.removeprefix("v1.")
    for staging in ("api", "apimachinery", "client-go", "kubectl", "kube-scheduler"):
        assert f"k8s.io/{staging} => k8s.io/{staging} v0.{minor}" in k8s


def test_build_stamp_must_match_inputs(tmp_path: Path) -> None:
    comp = components.COMPONENT_BY_NAME["etcd"]
    bin_dir = comp.bin_dir(tmp_path)
    bin_dir.mkdir(parents=True)
    (bin_dir / "etcd").write_text("#!/bin/sh\n")
    (bin_dir / "etcd").chmod(0o755)
    assert not build.is_built(comp, tmp_path)  # no stamp
    (bin_dir / "BUILD.json").write_text(json.dumps({"key": "stale"}))
    assert not build.is_built(comp, tmp_path)  # go.mod/go.sum/ldflags changed
    (bin_dir / "BUILD.json").write_text(json.dumps({"key": build.build_key(comp)}))
    assert build.is_built(comp, tmp_path)
    assert build._go_default_name("go.etcd.io/etcd/server/v3") == "server"
    assert build._go_default_name("k8s.io/kubernetes/cmd/kubectl") == "kubectl"


def test_never_deletes_a_foreign_directory(tmp_path: Path) -> None:
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    with pytest.raises(control_plane.ClusterError, match="refusing"):
        control_plane.down(tmp_path)
    assert precious.read_text() == "keep me"
    assert control_plane.down(tmp_path / "absent") is False
