"""Where a model's replicas are and how to wake it: the Kubernetes API (the real one).

The activator needs three things per model, all read or written through the API server
with its own ServiceAccount (least privilege, see the chart):

* ``resolve``: the model's Service (GET) -> its owning ModelDeployment (controller
  ownerReference) and its pod selector;
* ``ready_endpoints``: the Service's pods that are Ready (LIST pods by that selector) ->
  ``http://<podIP>:<port>``; a pod that has its IP but is not Ready yet is asked its own
  readiness check (``GET /health``, what the kubelet's probe asks) and counts as ready when
  it answers 200: the held requests go to it at once instead of after the kubelet's next
  probe tick and the status update (up to a probe period + an API round trip later);
* ``activate``: a merge patch of one annotation on the ModelDeployment
  (``contract.ANNOTATION_ACTIVATION``); the operator does the scaling and writes status.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import os
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import aiohttp

from wattserve import contract

SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class DiscoveryError(Exception):
    """The API server could not be reached or refused: the message says which and why."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status  # the API server's HTTP status, when it answered


class NotAModel(DiscoveryError):
    """No such Service, or not a wattserve model's: a 404 for the client, never retried."""


@dataclass(frozen=True)
class Target:
    namespace: str
    service: str
    model_deployment: str
    selector: tuple[tuple[str, str], ...]
    port: int = contract.SERVING_PORT


class Discovery(Protocol):
    async def resolve(self, namespace: str, service: str) -> Target: ...

    async def ready_endpoints(self, target: Target) -> list[str]: ...

    async def activate(self, target: Target) -> None: ...

    async def close(self) -> None: ...


def utcnow() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Connection:
    server: str
    token: str | None = None
    ssl_context: ssl.SSLContext | bool = True


def _data_file(data: str, directory: str) -> str:
    fd, path = tempfile.mkstemp(dir=directory)
    with os.fdopen(fd, "wb") as f:
        f.write(base64.b64decode(data))
    return path


def connection_from_kubeconfig(path: str) -> Connection:
    """The current context of a kubeconfig (server, CA, client certificate or token)."""
    import yaml  # only needed outside a cluster

    doc = yaml.safe_load(Path(path).read_text())
    ctx_name = doc.get("current-context")
    ctx = next(c["context"] for c in doc["contexts"] if c["name"] == ctx_name)
    cluster = next(c["cluster"] for c in doc["clusters"] if c["name"] == ctx["cluster"])
    user = next(u["user"] for u in doc["users"] if u["name"] == ctx["user"])
    tmp = tempfile.mkdtemp(prefix="wattserve-activator-")
    ca = cluster.get("certificate-authority") or (
        _data_file(cluster["certificate-authority-data"], tmp)
        if cluster.get("certificate-authority-data") else None)
    context = ssl.create_default_context(cafile=ca)
    cert = user.get("client-certificate") or (
        _data_file(user["client-certificate-data"], tmp)
        if user.get("client-certificate-data") else None)
    key = user.get("client-key") or (
        _data_file(user["client-key-data"], tmp) if user.get("client-key-data") else None)
    if cert and key:
        context.load_cert_chain(cert, key)
    return Connection(str(cluster["server"]).rstrip("/"), user.get("token"), context)


def connection_in_cluster() -> Connection:
    host, port = os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"]
    context = ssl.create_default_context(cafile=str(SA_DIR / "ca.crt"))
    token = (SA_DIR / "token").read_text().strip()
    return Connection(f"https://{host}:{port}", token, context)


class KubeDiscovery:
    """The Kubernetes API, with a short timeout per call (callers hold a deadline)."""

    def __init__(self, conn: Connection, timeout_s: float = 5.0,
                 probe_timeout_s: float = 0.5) -> None:
        self.conn = conn
        self.timeout = aiohttp.ClientTimeout(total=timeout_s, connect=min(timeout_s, 3.0))
        self.probe_timeout = aiohttp.ClientTimeout(total=probe_timeout_s)
        self._session: aiohttp.ClientSession | None = None
        self._probes: aiohttp.ClientSession | None = None

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.conn.token}"} if self.conn.token else {}

    async def _request(self, method: str, path: str, json: Any = None) -> Any:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=self.timeout, connector=aiohttp.TCPConnector(ssl=self.conn.ssl_context))
        headers = self._headers()
        if json is not None:
            headers["Content-Type"] = "application/merge-patch+json"
        try:
            async with self._session.request(method, self.conn.server + path, json=json,
                                             headers=headers) as r:
                if r.status >= 400:
                    text = (await r.text())[:300]
                    raise DiscoveryError(f"API server answered {r.status} to {method} {path}: "
                                         f"{text}", r.status)
                return await r.json()
        except (aiohttp.ClientError, TimeoutError, OSError) as err:
            raise DiscoveryError(f"cannot reach the API server ({type(err).__name__}: "
                                 f"{err or 'timeout'})") from err

    async def resolve(self, namespace: str, service: str) -> Target:
        try:
            svc = await self._request("GET",
                                      f"/api/v1/namespaces/{namespace}/services/{service}")
        except DiscoveryError as err:
            if err.status == 404:
                raise NotAModel(f"there is no Service {namespace}/{service}", 404) from None
            raise
        meta = svc.get("metadata") or {}
        owner = next((r["name"] for r in meta.get("ownerReferences") or ()
                      if r.get("kind") == "ModelDeployment" and r.get("controller")), None)
        selector = (svc.get("spec") or {}).get("selector") or {}
        if owner is None or not selector:
            raise NotAModel(f"Service {namespace}/{service} is not a wattserve model "
                            "(no ModelDeployment owner or no selector)")
        return Target(namespace, service, str(owner), tuple(sorted(selector.items())))

    async def ready_endpoints(self, target: Target) -> list[str]:
        selector = ",".join(f"{k}={v}" for k, v in target.selector)
        pods = await self._request(
            "GET", f"/api/v1/namespaces/{target.namespace}/pods"
                   f"?labelSelector={quote(selector)}")
        out, starting = [], []
        for pod in pods.get("items") or ():
            status = pod.get("status") or {}
            if not status.get("podIP") or (pod.get("metadata") or {}).get("deletionTimestamp"):
                continue
            url = f"http://{status['podIP']}:{target.port}"
            ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                        for c in status.get("conditions") or ())
            if ready:
                out.append(url)
            elif status.get("phase") == "Running":
                starting.append(url)
        if not out and starting:
            answers = await asyncio.gather(*(self._answers_ready(url) for url in starting))
            out = [url for url, ok in zip(starting, answers, strict=True) if ok]
        return sorted(out)

    async def _answers_ready(self, url: str) -> bool:
        """The pod's own readiness check (``GET /health`` -> 200), asked directly."""
        if self._probes is None:
            self._probes = aiohttp.ClientSession(timeout=self.probe_timeout)
        try:
            async with self._probes.get(url + contract.HEALTH_PATH) as r:
                return r.status == 200
        except (aiohttp.ClientError, TimeoutError, OSError):
            return False

    async def activate(self, target: Target) -> None:
        body = {"metadata": {"annotations": {contract.ANNOTATION_ACTIVATION: utcnow()}}}
        await self._request("PATCH", f"/apis/{contract.GROUP}/{contract.VERSION}/namespaces/"
                                     f"{target.namespace}/modeldeployments/"
                                     f"{target.model_deployment}", json=body)

    async def close(self) -> None:
        for session in (self._session, self._probes):
            if session is not None:
                await session.close()
