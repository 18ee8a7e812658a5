"""A PromQL window shorter than four scrape intervals is refused at start, naming the window
(``check_window`` wired into the operator's settings and CLI)."""

from __future__ import annotations

import pytest
from wattserve.controller.autoscaling import settings_from_env
from wattserve.controller.cli import run
from wattserve.render import SettingsError


def test_env_refuses_a_window_under_four_scrape_intervals() -> None:
    env = {"WATTSERVE_PROMQL_WINDOW": "30s",
           "WATTSERVE_PROMETHEUS_SCRAPE_INTERVAL_SECONDS": "15"}
    with pytest.raises(SettingsError, match=r"WATTSERVE_PROMQL_WINDOW.*4 scrape intervals"):
        settings_from_env(env)
    env["WATTSERVE_PROMQL_WINDOW"] = "1m"
    assert settings_from_env(env).scrape_interval_s == 15.0


def test_without_a_scrape_interval_the_window_is_not_checked() -> None:
    assert settings_from_env({"WATTSERVE_PROMQL_WINDOW": "10s"}).scrape_interval_s is None


def test_cli_refuses_a_short_window_before_starting(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--promql-window", "10s", "--scrape-interval", "15"]) == 2
    err = capsys.readouterr().err
    assert "--promql-window" in err and "shorter than 4 scrape intervals" in err
    assert run(["--scrape-interval", "0"]) == 2
    assert "--scrape-interval" in capsys.readouterr().err


def test_bad_scrape_interval_env_names_the_variable() -> None:
    with pytest.raises(SettingsError, match="WATTSERVE_PROMETHEUS_SCRAPE_INTERVAL_SECONDS"):
        settings_from_env({"WATTSERVE_PROMETHEUS_SCRAPE_INTERVAL_SECONDS": "often"})
