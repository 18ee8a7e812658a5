"""Helpers for tests that talk to a real Kubernetes API server (dev cluster, kind, ...).

* :func:`wait_for` polls a predicate until a deadline and fails with a clear message;
* :class:`Cluster` wraps a kubeconfig plus the kubectl/helm binaries.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from wattserve.devcluster.processes import PollTimeout, poll

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """``wait_for`` ran out of time; the message says what was awaited and the last state."""


def wait_for(
    predicate: Callable[[], T | None],
    timeout: float = 30.0,
    interval: float = 0.25,
    what: str = "condition",
) -> T:
    """Call ``predicate`` until it returns something truthy; return that value
    (:func:`wattserve.devcluster.processes.poll`, the one poll helper).

    Exceptions raised by the predicate count as "not yet" and the last one is reported.
    """
    try:
        return poll(predicate, timeout, what, interval, retry_on=(Exception,))  # type: ignore[return-value]
    except PollTimeout as err:
        raise WaitTimeout(str(err)) from None


class KubectlError(AssertionError):
    pass


@dataclass
class Cluster:
    """A reachable cluster: ``kubectl(...)`` runs against ``kubeconfig``."""

    kubeconfig: Path
    kubectl_bin: Path
    bin_dir: Path
    helm: Path | None = None
    external: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        """Environment for subprocesses that should use this cluster."""
        env = dict(os.environ)
        env["KUBECONFIG"] = str(self.kubeconfig)
        env["PATH"] = f"{self.bin_dir}{os.pathsep}{env.get('PATH', '')}"
        return env

    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        timeout: float = 60.0,
    ) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.kubectl_bin), f"--kubeconfig={self.kubeconfig}", *args]
        proc = subprocess.run(
            cmd, input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and proc.returncode != 0:
            raise KubectlError(
                f"kubectl {' '.join(args)} failed (exit {proc.returncode}):\n"
                f"{proc.stderr.strip() or proc.stdout.strip()}"
            )
        return proc

    def get_json(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def apply(
        self, manifest: dict[str, Any] | str, *extra: str
    ) -> subprocess.CompletedProcess[str]:
        text = manifest if isinstance(manifest, str) else yaml.safe_dump(manifest)
        return self.kubectl("apply", "-f", "-", *extra, input=text)

    def reachable(self) -> bool:
        try:
            proc = self.kubectl("get", "--raw=/readyz", check=False, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return False
        return proc.returncode == 0


def find_binary(name: str, preferred: Path | None) -> Path | None:
    if preferred is not None and os.access(preferred, os.X_OK):
        return preferred
    found = shutil.which(name)
    return Path(found) if found else None


def unique_name(prefix: str = "wst") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def pod_condition(pod: dict[str, Any], cond_type: str) -> dict[str, Any] | None:
    for cond in pod.get("status", {}).get("conditions", []) or []:
        if cond.get("type") == cond_type:
            return dict(cond)
    return None


def pods_ready(cluster: Cluster, namespace: str, selector: str, count: int) -> list[Any] | None:
    """The pods matching ``selector`` if at least ``count`` exist and all are Ready."""
    pods = cluster.get_json("pods", "-n", namespace, "-l", selector)["items"]
    if len(pods) < count:
        return None
    for pod in pods:
        ready = pod_condition(pod, "Ready")
        if not ready or ready.get("status") != "True":
            return None
    return list(pods)
