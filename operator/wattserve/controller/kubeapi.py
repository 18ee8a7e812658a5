"""A small asyncio Kubernetes API client (aiohttp) for the few verbs the operator uses.

kopf does the watching; this client does the writes and the rare reads: server-side apply
of children, merge patches of ``status``, deletes, Events, and a LIST for cache resyncs.
Credentials come from kopf's login functions (kubeconfig or in-cluster ServiceAccount); a
401 re-reads them once (rotated ServiceAccount tokens).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Final
from urllib.parse import quote

import aiohttp

from wattserve import contract
from wattserve.controller import metrics
from wattserve.render.children import CHILD_KINDS, POD

logger = logging.getLogger(__name__)

FIELD_MANAGER: Final = "wattserve"
APPLY: Final = "application/apply-patch+yaml"
MERGE: Final = "application/merge-patch+json"
TIMEOUT: Final = aiohttp.ClientTimeout(total=30, sock_connect=10)


class ApiError(Exception):
    def __init__(self, status: int, message: str, retry_after: float | None = None) -> None:
        self.status = status
        self.message = message
        self.retry_after = retry_after
        super().__init__(f"HTTP {status}: {message}")

    @property
    def permanent(self) -> bool:
        """The request itself is wrong (400 Bad Request, 422 Invalid): the same request
        cannot succeed on retry; only a changed spec (or operator) can fix it."""
        return self.status in (400, 422)


def resource_path(api_version: str, plural: str, namespace: str | None,
                  name: str | None = None, subresource: str | None = None) -> str:
    base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    path = base + (f"/namespaces/{quote(namespace)}" if namespace else "") + f"/{plural}"
    if name:
        path += f"/{quote(name)}"
    if subresource:
        path += f"/{subresource}"
    return path


PLURALS: Final[Mapping[str, str]] = {
    **{k.kind: k.plural for k in (*CHILD_KINDS.values(), POD)},
    "Event": "events", "ModelDeployment": "modeldeployments",
    "ServingPool": "servingpools", "Node": "nodes",
}


class KubeApi:
    """One aiohttp session; ``login`` returns a kopf ConnectionInfo (re-called on 401)."""

    def __init__(self, login: Callable[[], Any], concurrency: int = 32) -> None:
        self._login = login
        self._session: aiohttp.ClientSession | None = None
        self._server = ""
        self._slots = asyncio.Semaphore(concurrency)
        self.requests = 0  # every request sent, for benchmarks and tests
        self.default_namespace: str | None = None

    async def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            info = self._login()
            if info is None:
                raise ApiError(0, "no Kubernetes credentials (kubeconfig or ServiceAccount)")
            self._server = info.server.rstrip("/")
            self.default_namespace = info.default_namespace
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=64, ssl=info.as_ssl_context()),
                headers=info.as_http_headers() | {"User-Agent": "wattserve-operator"},
                timeout=TIMEOUT,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(self, method: str, path: str, *, body: Any = None,
                      content_type: str = "application/json",
                      params: Mapping[str, str] | None = None, verb: str = "") -> Any:
        for attempt in (1, 2):
            session = await self._open()
            data = None if body is None else json.dumps(body)
            headers = {"Content-Type": content_type} if body is not None else {}
            async with self._slots:
                self.requests += 1
                metrics.API_REQUESTS.labels(verb or method.lower()).inc()
                try:
                    async with session.request(method, self._server + path, data=data,
                                               headers=headers, params=params) as resp:
                        text = await resp.text()
                        status = resp.status
                        retry_after = resp.headers.get("Retry-After")
                except (aiohttp.ClientError, TimeoutError) as exc:
                    metrics.API_ERRORS.labels(verb or method.lower(), "connection").inc()
                    raise ApiError(0, f"{type(exc).__name__}: {exc}") from exc
            if status == 401 and attempt == 1:
                await self.close()  # re-login: the token may have been rotated
                continue
            if status >= 400:
                metrics.API_ERRORS.labels(verb or method.lower(), str(status)).inc()
                raise ApiError(status, _message(text), _seconds(retry_after))
            return json.loads(text) if text else None
        raise AssertionError("unreachable")

    async def apply(self, obj: Mapping[str, Any], force: bool = True) -> Any:
        """Server-side apply (field manager ``wattserve``). ``force``: we own these fields and
        take them back from hand edits; without it an object someone else wrote fields of
        answers 409 (a name taken by an object that is not ours)."""
        meta = obj["metadata"]
        path = resource_path(obj["apiVersion"], PLURALS[obj["kind"]], meta.get("namespace"),
                             meta["name"])
        params = {"fieldManager": FIELD_MANAGER, "force": "true" if force else "false"}
        return await self.request("PATCH", path, body=obj, content_type=APPLY, verb="apply",
                                  params=params)

    async def patch_status(self, namespace: str, name: str, patch: Mapping[str, Any],
                           resource_version: str | None = None) -> Any:
        """Merge patch of ``status``; with ``resource_version``, a 409 if the object changed
        since (optimistic concurrency)."""
        path = resource_path(contract.API_VERSION, "modeldeployments", namespace, name,
                             "status")
        body: dict[str, Any] = {"status": patch}
        if resource_version is not None:
            body["metadata"] = {"resourceVersion": resource_version}
        return await self.request("PATCH", path, body=body, content_type=MERGE,
                                  verb="patch", params={"fieldManager": FIELD_MANAGER})

    async def patch_pool_status(self, name: str, patch: Mapping[str, Any]) -> Any:
        """Merge patch of a ServingPool's ``status`` (cluster-scoped)."""
        path = resource_path(contract.API_VERSION, "servingpools", None, name, "status")
        return await self.request("PATCH", path, body={"status": patch}, content_type=MERGE,
                                  verb="patch", params={"fieldManager": FIELD_MANAGER})

    async def patch(self, api_version: str, kind: str, namespace: str, name: str,
                    patch: Mapping[str, Any]) -> Any:
        """Merge patch of an object (the operator's own annotations)."""
        path = resource_path(api_version, PLURALS[kind], namespace, name)
        return await self.request("PATCH", path, body=patch, content_type=MERGE, verb="patch",
                                  params={"fieldManager": FIELD_MANAGER})

    async def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        path = resource_path(api_version, PLURALS[kind], namespace, name)
        try:
            await self.request("DELETE", path, verb="delete",
                               params={"propagationPolicy": "Background"})
        except ApiError as err:
            if err.status != 404:
                raise

    async def list_all(self, api_version: str, kind: str, namespace: str | None,
                   label_selector: str = "") -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        async for page in self.list_pages(api_version, kind, namespace, label_selector):
            items.extend(page)
        return items

    async def list_pages(self, api_version: str, kind: str, namespace: str | None,
                         label_selector: str = "",
                         limit: int = 200) -> AsyncIterator[list[dict[str, Any]]]:
        """A paginated LIST, one page at a time (keeps the peak memory of big lists low)."""
        path = resource_path(api_version, PLURALS[kind], namespace)
        params: dict[str, str] = {"limit": str(limit)}
        if label_selector:
            params["labelSelector"] = label_selector
        while True:
            page = await self.request("GET", path, params=params, verb="list")
            yield list(page.get("items") or [])
            cont = (page.get("metadata") or {}).get("continue")
            if not cont:
                return
            params["continue"] = cont

    async def get(self, path: str) -> Any:
        return await self.request("GET", path, verb="get")

    async def create(self, api_version: str, kind: str, namespace: str,
                     body: Mapping[str, Any]) -> Any:
        path = resource_path(api_version, PLURALS[kind], namespace)
        return await self.request("POST", path, body=body, verb="create")


def _message(text: str) -> str:
    try:
        data = json.loads(text)
    except ValueError:
        return text[:300]
    return str(data.get("message") or data.get("reason") or text)[:500] if isinstance(
        data, dict) else text[:300]


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None
