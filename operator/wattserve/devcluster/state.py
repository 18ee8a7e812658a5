"""The dev cluster's on-disk state: one directory holding PKI, data, logs, kubeconfigs, pids.

Layout (``$WATTSERVE_STATE`` or ``~/.local/state/wattserve/dev-cluster``)::

    state.json          components (pid, port, binary, log), api port, versions
    kubeconfig          admin kubeconfig (embedded certs; CN=kubernetes-admin, O=system:masters)
    pki/                CA, serving/client certificates, service-account key pair
    kubeconfigs/        one kubeconfig per control-plane client
    etcd/               etcd data directory
    logs/<name>.log     stdout+stderr of each component
    certs/<name>/       self-signed serving certs of controller-manager / scheduler
    node/               the real node: containerd root, kubelet root, CNI config, pod logs
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


def default_state_dir() -> Path:
    env = os.environ.get("WATTSERVE_STATE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".local" / "state" / "wattserve" / "dev-cluster"


@dataclass
class ProcessRecord:
    name: str
    pid: int
    binary: str
    port: int
    log: str


@dataclass
class ClusterState:
    root: Path
    api_port: int = 0
    kubernetes_version: str = ""
    started_at: float = 0.0
    pools_file: str = ""
    processes: list[ProcessRecord] = field(default_factory=list)
    # The real node (realnode.py): its name, start time; None when the cluster has none.
    real_node: dict[str, Any] | None = None

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def pki_dir(self) -> Path:
        return self.root / "pki"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    def log(self, name: str) -> Path:
        return self.logs_dir / f"{name}.log"

    def component_kubeconfig(self, name: str) -> Path:
        return self.root / "kubeconfigs" / f"{name}.kubeconfig"

    def save(self) -> None:
        data: dict[str, Any] = asdict(self)
        data["root"] = str(self.root)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        tmp.replace(self.state_file)

    @classmethod
    def load(cls, root: Path) -> ClusterState | None:
        """The recorded state, or None when no cluster was started in ``root``."""
        path = root / "state.json"
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        procs = [ProcessRecord(**p) for p in data.pop("processes", [])]
        data.pop("root", None)
        return cls(root=root, processes=procs, **data)


@contextmanager
def state_lock(root: Path) -> Iterator[None]:
    """Serialise up/down on one state directory (lock file sits next to it)."""
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f".{root.name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
