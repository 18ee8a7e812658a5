"""A small Prometheus HTTP API client: instant queries only, stdlib ``urllib``.

Everything that is not a usable number is "no data" (``None``), never an exception:
connection refused, timeouts, HTTP errors, malformed JSON, ``status: error``, an empty
vector, NaN / +-Inf, and samples older than ``max_staleness_s``.
"""

from __future__ import annotations

import json
import math
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol


class InstantQuery(Protocol):
    """What :func:`wattserve.autoscale.observe.collect` needs from a client."""

    def query_value(self, promql: str) -> float | None: ...


@dataclass
class QueryError:
    """Why the last query returned no data (for logs and the operator's message)."""

    query: str
    reason: str
    unreachable: bool = False  # the server did not answer (connection, DNS, timeout)


class PrometheusClient:
    """``GET {base_url}/api/v1/query?query=...``; one number per query (vectors summed)."""

    def __init__(
        self,
        base_url: str,
        timeout_s: float = 5.0,
        max_staleness_s: float = 300.0,
        clock: Callable[[], float] = time.time,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.max_staleness_s = max_staleness_s
        self._clock = clock
        self._headers = dict(headers or {})
        self.last_error: QueryError | None = None

    def query_value(self, promql: str) -> float | None:
        """The query's value as one float, or None when there is no usable data.

        A vector with several series is summed (callers write ``sum(...)`` anyway); a
        scalar result is taken as is. Any NaN/Inf series or stale sample makes the whole
        answer None rather than a partial sum.
        """
        self.last_error = None
        body = self._get(promql)
        if body is None:
            return None
        return self._parse(promql, body)

    def _get(self, promql: str) -> Any:
        url = f"{self.base_url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        req = urllib.request.Request(url, headers={"Accept": "application/json", **self._headers})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                raw = resp.read(4 * 1024 * 1024)
        except urllib.error.HTTPError as exc:
            return self._fail(promql, f"HTTP {exc.code}")
        except (urllib.error.URLError, OSError, ValueError) as exc:
            # URLError wraps connection refused / DNS; TimeoutError and resets are OSError.
            return self._fail(promql, f"unreachable: {exc}", unreachable=True)
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            return self._fail(promql, "malformed JSON")

    def _parse(self, promql: str, body: Any) -> float | None:
        if not isinstance(body, dict) or body.get("status") != "success":
            err = body.get("error", "status != success") if isinstance(body, dict) else "?"
            return self._fail(promql, f"query failed: {err}")
        data = body.get("data")
        if not isinstance(data, dict):
            return self._fail(promql, "no data field")
        kind = data.get("resultType")
        result = data.get("result")
        samples: list[Any]
        if kind == "scalar":
            samples = [result]
        elif kind == "vector" and isinstance(result, list):
            samples = [s.get("value") if isinstance(s, dict) else None for s in result]
        else:
            return self._fail(promql, f"unsupported result type {kind!r}")
        if not samples:
            return self._fail(promql, "empty vector")
        total = 0.0
        now = self._clock()
        for sample in samples:
            value = _sample_value(sample)
            if value is None:
                return self._fail(promql, "malformed sample")
            ts, number = value
            if not math.isfinite(number):
                return self._fail(promql, "NaN or Inf")
            if self.max_staleness_s > 0 and now - ts > self.max_staleness_s:
                return self._fail(promql, f"stale sample ({now - ts:.0f}s old)")
            total += number
        return total

    def _fail(self, promql: str, reason: str, unreachable: bool = False) -> float | None:
        self.last_error = QueryError(promql, reason, unreachable)
        return None


def _sample_value(sample: Any) -> tuple[float, float] | None:
    if not isinstance(sample, list | tuple) or len(sample) != 2:
        return None
    try:
        return float(sample[0]), float(sample[1])
    except (TypeError, ValueError):
        return None
