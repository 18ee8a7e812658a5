"""The real node's configuration: what the kubelet, kube-proxy, CNI and the API server get."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from wattserve.devcluster import cni, commands, nodeconfig, realnode
from wattserve.devcluster.pki import Pki
from wattserve.devcluster.state import ClusterState


def _dirs(tmp_path: Path) -> nodeconfig.NodeDirs:
    return nodeconfig.NodeDirs(
        root=tmp_path / "node", run=tmp_path / "run", containerd_root=tmp_path / "c"
    )


def test_kubelet_allows_no_anonymous_access_and_asks_the_api_server(tmp_path: Path) -> None:
    cfg = nodeconfig.kubelet_config(_dirs(tmp_path), tmp_path / "pki", tmp_path / "s.sock", 1)
    assert cfg["authentication"]["anonymous"] == {"enabled": False}
    assert cfg["authentication"]["webhook"]["enabled"] is True
    assert cfg["authorization"] == {"mode": "Webhook"}
    assert cfg["readOnlyPort"] == 0
    assert cfg["registerWithTaints"] == []  # system workloads need no toleration
    assert cfg["clusterDNS"] == [cni.NODE_IP]
    assert cfg["cgroupDriver"] == "cgroupfs"


def test_kubelet_joins_the_cpu_local_pool_on_the_node_address(tmp_path: Path) -> None:
    argv = nodeconfig.kubelet_cmd(
        Path("/k"), _dirs(tmp_path), tmp_path / "c", tmp_path / "kc", "vm"
    )
    assert f"--node-ip={cni.NODE_IP}" in argv
    labels = next(a for a in argv if a.startswith("--node-labels="))
    assert f"{nodeconfig.POOL_LABEL}={nodeconfig.POOL_NAME}" in labels


def test_pod_subnet_does_not_overlap_kwok_pod_or_service_ranges() -> None:
    pods = ipaddress.ip_network(cni.POD_SUBNET)
    for other in (commands.POD_CIDR, commands.SERVICE_CIDR):
        assert not pods.overlaps(ipaddress.ip_network(other)), other
    assert ipaddress.ip_address(cni.POD_GATEWAY) in pods
    assert ipaddress.ip_address(cni.NODE_IP) not in pods


def test_cni_conflist_keeps_ipam_state_in_the_node_dir(tmp_path: Path) -> None:
    conf = cni.conflist(tmp_path / "ipam")
    bridge = conf["plugins"][0]
    assert bridge["type"] == "bridge" and bridge["bridge"] == cni.BRIDGE
    assert bridge["hairpinMode"] and bridge["ipMasq"] and bridge["isGateway"]
    assert bridge["ipam"]["dataDir"] == str(tmp_path / "ipam")


def test_api_server_advertises_the_node_address_only_with_a_real_node(tmp_path: Path) -> None:
    st = ClusterState(root=tmp_path)
    pki = Pki(tmp_path / "pki")
    plain = commands.apiserver_cmd(Path("/a"), st, pki, 6443, 2379)
    assert "--bind-address=127.0.0.1" in plain
    assert "--endpoint-reconciler-type=none" in plain
    node = commands.apiserver_cmd(Path("/a"), st, pki, 6443, 2379, cni.NODE_IP)
    assert f"--advertise-address={cni.NODE_IP}" in node
    assert "--endpoint-reconciler-type=lease" in node
    assert "--kubelet-preferred-address-types=InternalIP" in node
    for argv in (plain, node):
        assert any(a.startswith("--kubelet-client-certificate=") for a in argv)


def test_no_real_node_without_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(realnode.sys, "platform", "linux")
    monkeypatch.setattr(realnode.os, "geteuid", lambda: 1000)
    why = realnode.unavailable_reason()
    assert why is not None and why.startswith("not root")


def test_no_real_node_off_linux(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(realnode.sys, "platform", "darwin")
    assert realnode.unavailable_reason() == "not Linux (darwin)"


def test_missing_packages_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(realnode.sys, "platform", "linux")
    monkeypatch.setattr(realnode.os, "geteuid", lambda: 0)
    monkeypatch.setattr(realnode.shutil, "which", lambda c: None if c == "umoci" else "/x")
    why = realnode.unavailable_reason()
    assert why is not None and "umoci" in why and "15-realnode.sh" in why


def test_node_name_is_a_valid_dns_label(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(realnode.socket, "gethostname", lambda: "My_Host.example.org")
    assert realnode.node_name() == "wattserve-node"
    monkeypatch.setattr(realnode.socket, "gethostname", lambda: "Build-7.example.org")
    assert realnode.node_name() == "build-7"
