"""Optional API-key authentication of the OpenAI endpoints (like vLLM's `--api-key`).

Keys come from env `WATTSERVE_API_KEY` (comma-separated) and/or a file named by
`WATTSERVE_API_KEY_FILE` (one key per line, e.g. a mounted Secret). With no key
configured the API is open. `/health` and `/metrics` are never authenticated (probes
and Prometheus); `/v1/*` needs `Authorization: Bearer <key>`.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Mapping
from pathlib import Path

from starlette.requests import Request

from wattserve_serving.errors import APIError

ENV_API_KEY = "WATTSERVE_API_KEY"
ENV_API_KEY_FILE = "WATTSERVE_API_KEY_FILE"
MAX_KEY_FILE_BYTES = 64 * 1024


class KeyConfigError(Exception):
    """The key file cannot be read or holds no key: the server must not start open."""


def load_keys(env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    env = os.environ if env is None else env
    keys = [k.strip() for k in env.get(ENV_API_KEY, "").split(",") if k.strip()]
    path = env.get(ENV_API_KEY_FILE, "").strip()
    if path:
        try:
            with Path(path).open("rb") as fh:
                raw = fh.read(MAX_KEY_FILE_BYTES + 1)
        except OSError as exc:
            msg = f"{ENV_API_KEY_FILE}: cannot read {path}: {exc.strerror}"
            raise KeyConfigError(msg) from None
        if len(raw) > MAX_KEY_FILE_BYTES:
            raise KeyConfigError(f"{ENV_API_KEY_FILE}: {path} is larger than 64 KiB")
        from_file = [k.strip() for k in raw.decode("utf-8", "replace").splitlines() if k.strip()]
        if not from_file:
            raise KeyConfigError(f"{ENV_API_KEY_FILE}: {path} holds no key")
        keys.extend(from_file)
    return tuple(keys)


class APIKeys:
    def __init__(self, keys: tuple[str, ...]) -> None:
        self._keys = tuple(k.encode("utf-8") for k in keys)

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def check(self, request: Request) -> None:
        """Raise a 401 (OpenAI's `invalid_api_key`) unless the request carries a key."""
        if not self._keys:
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        given = token.strip().encode("utf-8", "replace")
        ok = False
        for key in self._keys:  # compare with every key: timing does not reveal which
            ok |= hmac.compare_digest(given, key)
        if scheme.lower() != "bearer" or not ok:
            raise APIError(
                401,
                "Incorrect API key provided: send 'Authorization: Bearer <key>'.",
                code="invalid_api_key",
                headers={"WWW-Authenticate": "Bearer"},
            )
