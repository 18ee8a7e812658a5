"""The real node's network: a pod-reachable host address and the CNI bridge configuration.

* ``wattserve0``: a dummy interface (an empty bridge where the kernel has no dummy module)
  holding :data:`NODE_IP`.  The API server advertises it
  (the ``kubernetes`` Service's endpoint), the kubelet serves on it, CoreDNS answers on it.
  Pods reach it through their default route (the bridge gateway), the host directly.
* ``wattserve-br0``: the CNI bridge (gateway :data:`POD_GATEWAY`, masquerading, hairpin),
  host-local IPAM in :data:`POD_SUBNET` (outside kwok's ``10.244.0.0/16``: no address clash
  between fake and real pods), IPAM state in the node's own directory.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

NODE_IP = "10.250.250.1"
DUMMY_LINK = "wattserve0"
BRIDGE = "wattserve-br0"
POD_SUBNET = "10.89.0.0/24"
POD_GATEWAY = "10.89.0.1"
NETWORK_NAME = "wattserve"
CNI_BIN_DIRS = (Path("/usr/lib/cni"), Path("/opt/cni/bin"))
CNI_PLUGINS = ("bridge", "host-local", "loopback", "portmap")


def cni_bin_dir() -> Path | None:
    """The first directory holding every plugin the conflist names (None: not installed)."""
    for d in CNI_BIN_DIRS:
        if all((d / p).is_file() for p in CNI_PLUGINS):
            return d
    return None


def conflist(ipam_dir: Path) -> dict[str, Any]:
    return {
        "cniVersion": "1.0.0",
        "name": NETWORK_NAME,
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "ipMasq": True,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "dataDir": str(ipam_dir),
                    "ranges": [[{"subnet": POD_SUBNET, "gateway": POD_GATEWAY}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
            {"type": "loopback"},
        ],
    }


def write_conflist(conf_dir: Path, ipam_dir: Path) -> Path:
    conf_dir.mkdir(parents=True, exist_ok=True)
    ipam_dir.mkdir(parents=True, exist_ok=True)
    path = conf_dir / "10-wattserve.conflist"
    path.write_text(json.dumps(conflist(ipam_dir), indent=2) + "\n")
    return path


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)


def add_node_address() -> None:
    """Create the dummy interface with :data:`NODE_IP` (idempotent)."""
    if not Path(f"/sys/class/net/{DUMMY_LINK}").exists():
        # A dummy device where the kernel has the module; otherwise an empty bridge (its
        # addresses are just as local: pods reach them through their gateway).
        res = _ip("link", "add", DUMMY_LINK, "type", "dummy")
        if res.returncode != 0:
            res = _ip("link", "add", DUMMY_LINK, "type", "bridge")
        if res.returncode != 0:
            raise OSError(f"ip link add {DUMMY_LINK} type dummy|bridge: {res.stderr.strip()}")
    _ip("addr", "replace", f"{NODE_IP}/32", "dev", DUMMY_LINK)
    res = _ip("link", "set", DUMMY_LINK, "up")
    if res.returncode != 0:
        raise OSError(f"ip link set {DUMMY_LINK} up: {res.stderr.strip()}")


def links() -> list[str]:
    """Interfaces the node creates on the host (removed by ``down``)."""
    return [BRIDGE, DUMMY_LINK]
