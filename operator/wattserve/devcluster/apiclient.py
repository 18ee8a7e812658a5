"""A minimal HTTPS client for the dev cluster's own bootstrapping (readyz, nodes, SA checks).

Only what ``up``/``status`` need; tests and the operator use kubectl or the kubernetes client.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class ApiError(RuntimeError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


@dataclass
class ApiClient:
    port: int
    ca_cert: Path
    client_cert: Path
    client_key: Path
    timeout_s: float = 5.0

    def __post_init__(self) -> None:
        self._ctx = ssl.create_default_context(cafile=str(self.ca_cert))
        self._ctx.load_cert_chain(str(self.client_cert), str(self.client_key))

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, str]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.server + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, context=self._ctx, timeout=self.timeout_s) as resp:
                return int(resp.status), resp.read().decode(errors="replace")
        except urllib.error.HTTPError as exc:
            return int(exc.code), exc.read().decode(errors="replace")

    def get_json(self, path: str) -> Any:
        status, text = self.request("GET", path)
        if status != 200:
            raise ApiError(status, text[:300])
        return json.loads(text)

    def create(self, path: str, obj: dict[str, Any]) -> bool:
        """POST ``obj``; True if created, False if it already existed."""
        status, text = self.request("POST", path, obj)
        if status == 409:
            return False
        if status not in (200, 201, 202):
            raise ApiError(status, text[:300])
        return True

    def ready(self) -> tuple[bool, str]:
        """(``/readyz`` is OK, detail) — never raises on connection problems."""
        try:
            status, text = self.request("GET", "/readyz")
        except (OSError, ssl.SSLError) as exc:
            return False, str(exc)
        return status == 200, text.strip()[-300:]

    def version(self) -> str:
        return str(self.get_json("/version").get("gitVersion", "?"))
