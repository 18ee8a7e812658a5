"""The Prometheus Operator monitors: rendered only where monitoring.coreos.com/v1 is served
(or when forced), and a scrape timeout never longer than the interval."""

from __future__ import annotations

from typing import Any

import pytest

from .helmutil import RenderError, by_kind, one, render

ON = {"serviceMonitor": {"enabled": True}, "podMonitor": {"enabled": True}}


def test_without_the_prometheus_operator_api_the_monitors_are_skipped() -> None:
    docs = render(ON, api_versions=())
    assert not by_kind(docs, "ServiceMonitor") and not by_kind(docs, "PodMonitor")
    assert one(docs, "Deployment")  # the rest installs


def test_with_the_prometheus_operator_api_the_monitors_render() -> None:
    docs = render(ON, api_versions=("monitoring.coreos.com/v1",))
    assert one(docs, "ServiceMonitor") and one(docs, "PodMonitor")


def test_force_renders_the_monitors_without_the_api() -> None:
    docs = render({"serviceMonitor": {"enabled": True, "force": True},
                   "podMonitor": {"enabled": True, "force": True}}, api_versions=())
    assert one(docs, "ServiceMonitor") and one(docs, "PodMonitor")


def _endpoint(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    spec = one(docs, kind)["spec"]
    (ep,) = spec["endpoints"] if kind == "ServiceMonitor" else spec["podMetricsEndpoints"]
    return ep


@pytest.mark.parametrize(("mon", "kind"), [("serviceMonitor", "ServiceMonitor"),
                                           ("podMonitor", "PodMonitor")])
@pytest.mark.parametrize(("interval", "timeout"), [("5s", "10s"), ("1m", "1m500ms"),
                                                   ("500ms", "1s")])
def test_a_scrape_timeout_longer_than_the_interval_fails_naming_both(
        mon: str, kind: str, interval: str, timeout: str) -> None:
    with pytest.raises(RenderError) as err:
        render({mon: {"enabled": True, "interval": interval, "scrapeTimeout": timeout}})
    msg = str(err.value)
    assert f"{mon}.scrapeTimeout ({timeout})" in msg and f"{mon}.interval ({interval})" in msg


@pytest.mark.parametrize(("mon", "kind"), [("serviceMonitor", "ServiceMonitor"),
                                           ("podMonitor", "PodMonitor")])
def test_timeouts_up_to_the_interval_render_and_empty_omits_the_field(mon: str,
                                                                       kind: str) -> None:
    ep = _endpoint(render({mon: {"enabled": True, "interval": "1m", "scrapeTimeout": "60s"}}),
                   kind)
    assert (ep["interval"], ep["scrapeTimeout"]) == ("1m", "60s")
    ep = _endpoint(render({mon: {"enabled": True, "interval": "5s", "scrapeTimeout": ""}}),
                   kind)
    assert ep["interval"] == "5s" and "scrapeTimeout" not in ep
    ep = _endpoint(render({mon: {"enabled": True, "interval": "", "scrapeTimeout": ""}}), kind)
    assert "interval" not in ep and "scrapeTimeout" not in ep
