"""The Prometheus client against a tiny stdlib HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest
from wattserve.autoscale.prometheus import PrometheusClient
from wattserve.devcluster.processes import free_port

NOW = 1_700_000_000.0


def vector(*values: str, ts: float = NOW) -> dict[str, Any]:
    return {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {"pod": f"p{i}"}, "value": [ts, v]} for i, v in enumerate(values)]}}


class _Handler(BaseHTTPRequestHandler):
    routes: ClassVar[dict[str, tuple[int, str, float]]] = {}
    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        parsed = urllib.parse.urlparse(self.path)
        query = urllib.parse.parse_qs(parsed.query).get("query", [""])[0]
        _Handler.seen.append(f"{parsed.path}?{query}")
        status, body, delay = _Handler.routes.get(query, (200, json.dumps(vector()), 0.0))
        if delay:
            time.sleep(delay)
        payload = body.encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (the timeout test)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def prom() -> Iterator[str]:
    _Handler.routes = {}
    _Handler.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def route(query: str, body: Any, status: int = 200, delay: float = 0.0) -> None:
    _Handler.routes[query] = (status, body if isinstance(body, str) else json.dumps(body), delay)


def client(url: str, **kw: Any) -> PrometheusClient:
    return PrometheusClient(url, timeout_s=kw.pop("timeout_s", 2.0), clock=lambda: NOW, **kw)


def test_sums_a_vector_and_sends_the_query_to_the_instant_query_endpoint(prom: str) -> None:
    q = 'sum(rate(wattserve_requests_total{namespace="a b", model_deployment="m"}[1m]))'
    route(q, vector("1.5", "2.25"))
    assert client(prom).query_value(q) == pytest.approx(3.75)
    assert _Handler.seen == [f"/api/v1/query?{q}"]


def test_reads_a_scalar_result(prom: str) -> None:
    route("scalar(x)", {"status": "success", "data": {"resultType": "scalar",
                                                      "result": [NOW, "7"]}})
    assert client(prom).query_value("scalar(x)") == 7.0


@pytest.mark.parametrize("body,why", [
    (vector(), "empty vector"),
    (vector("NaN"), "NaN"),
    (vector("+Inf"), "NaN or Inf"),
    (vector("1", "-Inf"), "NaN or Inf"),
    ({"status": "error", "errorType": "bad_data", "error": "parse error"}, "parse error"),
    ("{not json", "malformed JSON"),
    ({"status": "success", "data": {"resultType": "matrix", "result": []}}, "unsupported"),
    ({"status": "success", "data": {"resultType": "vector", "result": [{"value": ["x"]}]}},
     "malformed sample"),
])
def test_unusable_answers_are_no_data_not_errors(prom: str, body: Any, why: str) -> None:
    route("q", body)
    c = client(prom)
    assert c.query_value("q") is None
    assert c.last_error is not None and why in c.last_error.reason


def test_stale_samples_are_no_data(prom: str) -> None:
    route("old", vector("5", ts=NOW - 600))
    route("fresh", vector("5", ts=NOW - 30))
    c = client(prom, max_staleness_s=300)
    assert c.query_value("old") is None
    assert c.last_error is not None and "stale" in c.last_error.reason
    assert c.query_value("fresh") == 5.0


def test_http_errors_are_no_data(prom: str) -> None:
    route("q", {"status": "error", "error": "overloaded"}, status=503)
    c = client(prom)
    assert c.query_value("q") is None
    assert c.last_error is not None and "HTTP 503" in c.last_error.reason
    assert not c.last_error.unreachable  # it answered


def test_a_slow_server_times_out_as_no_data(prom: str) -> None:
    route("slow", vector("1"), delay=1.0)
    c = client(prom, timeout_s=0.2)
    started = time.monotonic()
    assert c.query_value("slow") is None
    assert time.monotonic() - started < 0.9
    assert c.last_error is not None and "unreachable" in c.last_error.reason
    assert c.last_error.unreachable  # a flag, not a message prefix, says so


def test_connection_refused_is_no_data() -> None:
    port = free_port()  # a port nothing listens on
    c = client(f"http://127.0.0.1:{port}", timeout_s=1.0)
    assert c.query_value("up") is None
    assert c.last_error is not None and "unreachable" in c.last_error.reason
    assert c.last_error.unreachable
