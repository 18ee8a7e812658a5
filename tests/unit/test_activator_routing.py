"""Where held requests go and where they come from (pure parts): the activator's addresses
from its EndpointSlices, the operator setting, and which model a request names."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from aiohttp.test_utils import make_mocked_request
from wattserve.controller.activation import activator_service_from_env, endpoints_from_slices
from wattserve.reconcile.zero import ActivatorEndpoints
from wattserve.render import SettingsError
from wattserve_activator.server import model_of


def slice_(addresses: list[tuple[str, bool | None]], port: int = 8012,
           kind: str = "IPv4") -> dict[str, object]:
    return {"addressType": kind, "ports": [{"name": "http", "port": port},
                                           {"name": "admin", "port": 9091}],
            "endpoints": [{"addresses": [a], "conditions": {} if r is None else {"ready": r}}
                          for a, r in addresses]}


def test_ready_addresses_of_every_slice_sorted_with_the_http_port() -> None:
    found = endpoints_from_slices([slice_([("10.0.0.9", True), ("10.0.0.3", None)], 18012),
                                   slice_([("10.0.1.1", False)]),
                                   slice_([("fd00::1", True)], kind="IPv6")])
    assert found == ActivatorEndpoints(("10.0.0.3", "10.0.0.9"), 18012)


def test_no_ready_activator_pod_means_no_route() -> None:
    assert endpoints_from_slices([slice_([("10.0.0.9", False)])]) is None
    assert endpoints_from_slices([]) is None


@pytest.mark.parametrize("raw", ["wattserve", "/x", "ns/", "NS/x", "a/b/c"])
def test_a_malformed_activator_service_names_the_variable(raw: str) -> None:
    with pytest.raises(SettingsError, match="WATTSERVE_ACTIVATOR_SERVICE"):
        activator_service_from_env({"WATTSERVE_ACTIVATOR_SERVICE": raw})


def test_the_activator_service_setting() -> None:
    assert activator_service_from_env({}) is None
    assert activator_service_from_env({"WATTSERVE_ACTIVATOR_SERVICE": "ws/ws-activator"}) == (
        "ws", "ws-activator")


@pytest.mark.parametrize(("headers", "model"), [
    ({"Host": "smol.team-a.svc.cluster.local:8000"}, ("team-a", "smol")),
    ({"Host": "smol.team-a.svc"}, ("team-a", "smol")),
    ({"Host": "smol.team-a:8000"}, ("team-a", "smol")),
    ({"Host": "smol:8000"}, None),  # no namespace: cannot tell
    ({"Host": "10.96.3.4:8000"}, None),  # a ClusterIP: cannot tell
    ({"Host": "api.example.com"}, None),
    ({"Host": "x", "X-Wattserve-Model-Deployment": "team-b/llama"}, ("team-b", "llama")),
    ({"Host": "x", "X-Wattserve-Model-Deployment": "llama"}, None),
])
def test_which_model_a_request_is_for(headers: dict[str, str],
                                      model: tuple[str, str] | None) -> None:
    assert model_of(make_mocked_request("POST", "/v1/chat/completions", headers=headers)) == model


def test_the_activator_shares_only_the_contract_with_the_operator() -> None:
    package = Path(__file__).resolve().parents[2] / "serving" / "wattserve_activator"
    imported = set()
    for path in package.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            imported |= {n for n in names if n.split(".")[0] in ("wattserve",
                                                                 "wattserve_serving")}
    assert imported == {"wattserve", "wattserve.contract"}


def test_a_refresh_records_the_addresses_and_requeues_the_models_at_zero() -> None:
    import asyncio
    from unittest.mock import AsyncMock, create_autospec

    from wattserve.controller.activation import refresh_once
    from wattserve.controller.config import OperatorConfig
    from wattserve.controller.kubeapi import KubeApi
    from wattserve.controller.reconciler import Reconciler

    async def scenario() -> None:
        api = create_autospec(KubeApi, instance=True)
        api.list_all = AsyncMock(return_value=[slice_([("10.0.0.9", True)])])
        rec = Reconciler(api, OperatorConfig(activator_service=("ws", "ws-activator")))
        assert rec.activator_unknown
        rec.mds[("a", "zero")] = {"status": {"replicas": {"desired": 0}}}
        rec.mds[("a", "busy")] = {"status": {"replicas": {"desired": 2}}}
        await refresh_once(rec, ("ws", "ws-activator"))
        api.list_all.assert_awaited_once_with("discovery.k8s.io/v1", "EndpointSlice", "ws",
                                              "kubernetes.io/service-name=ws-activator")
        assert rec.activator == ActivatorEndpoints(("10.0.0.9",), 8012)
        assert not rec.activator_unknown
        assert len(rec.queue) == 1 and await rec.queue.get() == ("a", "zero")

    asyncio.run(scenario())


def test_bad_activator_settings_exit_2_naming_the_setting(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from wattserve_activator.__main__ import main

    monkeypatch.setenv("WATTSERVE_ACTIVATOR_DEADLINE_SECONDS", "soon")
    assert main([]) == 2
    assert "WATTSERVE_ACTIVATOR_DEADLINE_SECONDS: must be a number" in capsys.readouterr().err
    monkeypatch.delenv("WATTSERVE_ACTIVATOR_DEADLINE_SECONDS")
    with pytest.raises(SystemExit) as exc:
        main(["--queue-size", "0"])
    assert exc.value.code == 2 and "--queue-size: must be > 0" in capsys.readouterr().err
