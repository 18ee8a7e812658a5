"""The activator under faults: queue full, deadline, API server or replica unreachable, client
disconnect, unknown model. Upstreams are the real serving app on loopback (its engine is the
deterministic FakeEngine: these tests are about the activator, not about generation)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from wattserve.devcluster.processes import free_port
from wattserve_activator.discovery import Connection, KubeDiscovery

from activator_helpers import ActivatorServer, LoopbackDiscovery, wait_until
from serving_fakes import FakeEngine
from serving_helpers import LoopbackServer, fake_config, parse_metrics

MODEL = {"X-Wattserve-Model-Deployment": "team-a/fake"}
CHAT = {"model": "fake", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


@pytest.fixture
def servers() -> Iterator[list[Any]]:
    started: list[Any] = []
    yield started
    for server in reversed(started):
        server.stop()


def start_fake_upstream(servers: list[Any], **engine: Any) -> str:
    server = LoopbackServer(fake_config(), engine=FakeEngine(**engine)).start()
    servers.append(server)
    return server.url


def activator(servers: list[Any], discovery: Any, **settings: Any) -> ActivatorServer:
    server = ActivatorServer(discovery, **settings).start()
    servers.append(server)
    return server


def metrics(server: ActivatorServer) -> dict[str, float]:
    return parse_metrics(httpx.get(server.admin_url + "/metrics", timeout=5).text)


def assert_openai_503(r: httpx.Response, code: str) -> dict[str, Any]:
    assert r.status_code == 503, r.text
    assert int(r.headers["Retry-After"]) > 0
    err = r.json()["error"]
    assert err["code"] == code and err["type"] == "service_unavailable" and err["message"]
    return dict(err)


def test_a_full_queue_answers_503_at_once_and_the_held_ones_at_their_deadline(
        servers: list[Any]) -> None:
    never = LoopbackDiscovery(start_upstream=None)  # woken, but no replica ever comes up
    act = activator(servers, never, queue_size=2, deadline_s=2.0, poll_s=0.05)
    results: list[tuple[float, httpx.Response]] = []

    def send() -> None:
        t0 = time.monotonic()
        r = httpx.post(act.url + "/v1/chat/completions", json=CHAT, headers=MODEL, timeout=10)
        results.append((time.monotonic() - t0, r))

    held = [threading.Thread(target=send) for _ in range(2)]
    for t in held:
        t.start()
    assert wait_until(lambda: metrics(act).get("wattserve_activator_held_requests") == 2)
    t0 = time.monotonic()
    full = httpx.post(act.url + "/v1/chat/completions", json=CHAT, headers=MODEL, timeout=10)
    assert time.monotonic() - t0 < 0.5
    assert "queue holds 2" in assert_openai_503(full, "queue_full")["message"]
    for t in held:
        t.join(timeout=10)
    assert len(results) == 2
    for elapsed, r in results:
        assert "deadline" in assert_openai_503(r, "deadline")["message"]
        assert 1.9 <= elapsed < 3.0  # answered at the deadline, never past it
    assert never.activations == 1  # one wake-up for everyone who waited
    m = metrics(act)
    assert m["wattserve_activator_held_requests"] == 0
    assert m["wattserve_activator_rejected_total{namespace=team-a,reason=queue_full,"
             "service=fake}"] == 1
    assert m["wattserve_activator_hold_seconds_count"] == 2


def test_an_unreachable_api_server_answers_503_with_the_reason_before_the_deadline(
        servers: list[Any]) -> None:
    closed = free_port()  # the real KubeDiscovery against an API server that is not there
    act = activator(servers, KubeDiscovery(Connection(f"http://127.0.0.1:{closed}")),
                    deadline_s=30.0)
    t0 = time.monotonic()
    r = httpx.post(act.url + "/v1/chat/completions", json=CHAT, headers=MODEL, timeout=35)
    assert time.monotonic() - t0 < 5.0
    assert "cannot reach the API server" in assert_openai_503(r, "api")["message"]


def test_the_api_server_failing_during_a_wake_answers_every_waiter(servers: list[Any]) -> None:
    disco = LoopbackDiscovery(start_upstream=None)
    act = activator(servers, disco, deadline_s=30.0, poll_s=0.05)
    out: list[httpx.Response] = []
    threads = [threading.Thread(target=lambda: out.append(httpx.post(
        act.url + "/v1/chat/completions", json=CHAT, headers=MODEL, timeout=35)))
        for _ in range(3)]
    for t in threads:
        t.start()
    assert wait_until(lambda: disco.activations == 1)
    disco.api_down = True
    for t in threads:
        t.join(timeout=10)
    assert len(out) == 3
    for r in out:
        assert "injected fault" in assert_openai_503(r, "api")["message"]


def test_a_replica_reported_ready_but_unreachable_answers_503(servers: list[Any]) -> None:
    disco = LoopbackDiscovery()
    disco.stale = [f"http://127.0.0.1:{free_port()}"]
    act = activator(servers, disco, deadline_s=10.0)
    r = httpx.post(act.url + "/v1/chat/completions", json=CHAT, headers=MODEL, timeout=15)
    assert "cannot reach a replica" in assert_openai_503(r, "upstream_unreachable")["message"]
    assert disco.activations == 0  # it looked ready: no wake-up


def test_a_client_that_goes_away_while_held_is_counted_and_the_model_still_wakes(
        servers: list[Any]) -> None:
    disco = LoopbackDiscovery(start_upstream=lambda: (time.sleep(1.0), start_fake_upstream(
        servers))[1])
    act = activator(servers, disco, deadline_s=20.0, poll_s=0.05)
    sock = socket.create_connection(("127.0.0.1", act.port))
    body = b'{"model": "fake", "messages": [{"role": "user", "content": "hi"}]}'
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                 b"X-Wattserve-Model-Deployment: team-a/fake\r\nContent-Type: application/json"
                 b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    assert wait_until(lambda: metrics(act).get("wattserve_activator_held_requests") == 1)
    sock.close()
    assert wait_until(lambda: act.call(lambda: act.activator.cancelled) == 1)
    assert wait_until(lambda: metrics(act).get("wattserve_activator_held_requests") == 0)
    r = httpx.post(act.url + "/v1/chat/completions", json=CHAT, headers=MODEL, timeout=20)
    assert r.status_code == 200, r.text
    assert disco.activations == 1


def test_a_request_naming_no_model_gets_an_openai_400(servers: list[Any]) -> None:
    act = activator(servers, LoopbackDiscovery())
    r = httpx.post(act.url + "/v1/chat/completions", json=CHAT, timeout=5)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "unknown_model"


def test_the_host_header_of_a_cluster_dns_name_selects_the_model(servers: list[Any]) -> None:
    url = start_fake_upstream(servers)
    disco = LoopbackDiscovery(endpoints=[url])
    act = activator(servers, disco)
    r = httpx.post(act.url + "/v1/chat/completions", json=CHAT, timeout=10,
                   headers={"Host": "fake.team-b.svc.cluster.local:8000"})
    assert r.status_code == 200, r.text
    assert disco.resolved == [("team-b", "fake")]
    assert disco.activations == 0  # already ready: forwarded, nothing woken


class OnlyKnownDiscovery(LoopbackDiscovery):
    """Fault injection: the API server knows one model's Service; any other name is no
    model (404 or not owned by a ModelDeployment), as KubeDiscovery.resolve says."""

    async def resolve(self, namespace: str, service: str) -> Any:
        from wattserve_activator.discovery import NotAModel

        if (namespace, service) != ("team-a", "fake"):
            self.resolved.append((namespace, service))
            raise NotAModel(f"there is no Service {namespace}/{service}", 404)
        return await super().resolve(namespace, service)


def test_names_of_no_model_get_a_404_and_leave_no_series_or_state(servers: list[Any]) -> None:
    """Client-chosen names became metric series and gates for good (a few thousand random
    headers: +46k metric lines, +38 MB) and each got a retryable 503 after 3 API calls."""
    url = start_fake_upstream(servers)
    disco = OnlyKnownDiscovery(endpoints=[url])
    act = activator(servers, disco)
    before = len(httpx.get(act.admin_url + "/metrics", timeout=5).text)
    for i in range(200):
        r = httpx.post(act.url + "/v1/chat/completions", json=CHAT, timeout=5,
                       headers={"X-Wattserve-Model-Deployment": f"ns-{i}/svc-{i}"})
        assert r.status_code == 404, r.text
        assert "Retry-After" not in r.headers
        assert r.json()["error"]["code"] == "model_not_found"
    again = httpx.post(act.url + "/v1/chat/completions", json=CHAT, timeout=5,
                       headers={"X-Wattserve-Model-Deployment": "ns-199/svc-199"})
    assert again.status_code == 404
    assert len(disco.resolved) == 200  # once per name, not retried, then remembered a while
    assert len(httpx.get(act.admin_url + "/metrics", timeout=5).text) <= before + 200
    assert act.call(lambda: len(act.activator.holding.gates)) == 0
    ok = httpx.post(act.url + "/v1/chat/completions", json=CHAT, timeout=10, headers=MODEL)
    assert ok.status_code == 200, ok.text


@pytest.mark.parametrize("header", ["team-a/fake?watch=1", "../../apis/x", "Team-A/fake",
                                    "team-a/fa%2Fke", "a" * 64 + "/fake"])
def test_a_model_header_that_is_no_namespace_and_service_is_400(
        servers: list[Any], header: str) -> None:
    disco = LoopbackDiscovery()
    act = activator(servers, disco)
    r = httpx.post(act.url + "/v1/chat/completions", json=CHAT, timeout=5,
                   headers={"X-Wattserve-Model-Deployment": header})
    assert r.status_code == 400 and r.json()["error"]["code"] == "unknown_model"
    assert disco.resolved == []  # never reaches an API server path


def test_held_bodies_share_one_memory_budget(servers: list[Any],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Each held request kept its body (up to 16 MiB) with no budget for all of them:
    about 13 large held requests OOM-killed the activator and every held request with it."""
    from wattserve_activator import server as activator_server

    monkeypatch.setattr(activator_server, "HELD_BYTES_BUDGET", 1_000_000)
    act = activator(servers, LoopbackDiscovery(), deadline_s=3.0)  # nothing ever wakes
    big = {**CHAT, "messages": [{"role": "user", "content": "x" * 600_000}]}
    answers: list[httpx.Response] = []
    first = threading.Thread(target=lambda: answers.append(httpx.post(
        act.url + "/v1/chat/completions", json=big, headers=MODEL, timeout=10)))
    first.start()
    assert wait_until(lambda: act.call(lambda: act.activator.held_bytes) > 0)
    second = httpx.post(act.url + "/v1/chat/completions", json=big, headers=MODEL, timeout=10)
    assert_openai_503(second, "activator_full")
    small = httpx.post(act.url + "/v1/chat/completions", json=CHAT, headers=MODEL, timeout=10)
    assert_openai_503(small, "deadline")  # still held within the budget, then its deadline
    first.join(timeout=10)
    assert_openai_503(answers[0], "deadline")
    assert act.call(lambda: act.activator.held_bytes) == 0


class DyingUpstream:
    """Fault injection: a replica that streams two events, then its connection drops."""

    def __init__(self) -> None:
        import asyncio

        from aiohttp import web

        self.calls = 0
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.loop = asyncio.new_event_loop()

        async def health(_: web.Request) -> web.Response:
            return web.json_response({"status": "ok"})

        async def chat(request: web.Request) -> web.StreamResponse:
            self.calls += 1
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await response.prepare(request)
            for i in range(2):
                await response.write(f"data: {{\"i\": {i}}}\n\n".encode())
                await asyncio.sleep(0.05)
            assert request.transport is not None
            request.transport.close()  # the replica died mid-response
            return response

        app = web.Application()
        app.router.add_get("/health", health)
        app.router.add_post("/v1/chat/completions", chat)
        self.runner = web.AppRunner(app)

        async def start() -> None:
            await self.runner.setup()
            await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(start(), self.loop).result(timeout=10)

    def stop(self) -> None:
        import asyncio

        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


def test_a_replica_failing_mid_response_is_not_asked_again(
        servers: list[Any], caplog: pytest.LogCaptureFixture) -> None:
    """Before: a connection error after the response had started went to the retry that is
    meant for replicas that never answered: the request ran twice and the activator logged
    an unhandled traceback. The client now keeps what was sent and sees the cut."""
    upstream = DyingUpstream()
    servers.append(upstream)
    act = activator(servers, LoopbackDiscovery(endpoints=[upstream.url]))
    events: list[str] = []
    with pytest.raises(httpx.HTTPError), httpx.stream(
            "POST", act.url + "/v1/chat/completions", json=CHAT, headers=MODEL,
            timeout=10) as r:
        assert r.status_code == 200
        events.extend(line for line in r.iter_lines() if line)
    assert events == ['data: {"i": 0}', 'data: {"i": 1}']
    assert upstream.calls == 1
    assert wait_until(lambda: any("failed mid-response" in r.getMessage()
                                  for r in caplog.records))
    assert not [r for r in caplog.records if r.levelname == "ERROR"]  # no unhandled error
