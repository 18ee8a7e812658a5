"""The autoscaler's runtime settings (``WATTSERVE_*``) and its spec adapter.

The tick logic itself is pure and lives in :mod:`wattserve.reconcile.scaling`; this module
binds it to the spec -> ``ScalingInputs`` adapter (:func:`wattserve.autoscale.inputs.
scaling_inputs`). The operator never imports the simulator
(``tests/lint/test_import_rules.py``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from wattserve.api.types import ModelDeployment
from wattserve.autoscale import Observation, ScalerState
from wattserve.autoscale.inputs import scaling_inputs
from wattserve.autoscale.promql import (
    EnergySource,
    QueryTemplates,
    check_window,
    render,
    window_seconds,
)
from wattserve.planning.placement import Candidate
from wattserve.reconcile import scaling
from wattserve.reconcile.scaling import ENV_PROMETHEUS_URL, TickOutcome
from wattserve.render import SettingsError

__all__ = ["ENV_PROMETHEUS_URL", "AutoscaleSettings", "check_templates", "settings_from_env",
           "tick"]

ENV_INTERVAL: Final = "WATTSERVE_AUTOSCALE_INTERVAL_SECONDS"
ENV_ENERGY_SOURCE: Final = "WATTSERVE_ENERGY_SOURCE"
ENV_WINDOW: Final = "WATTSERVE_PROMQL_WINDOW"
ENV_QUERY_TIMEOUT: Final = "WATTSERVE_PROMETHEUS_TIMEOUT_SECONDS"
ENV_TEMPLATE_PREFIX: Final = "WATTSERVE_PROMQL_"
ENV_SCRAPE_INTERVAL: Final = "WATTSERVE_PROMETHEUS_SCRAPE_INTERVAL_SECONDS"
# QueryTemplates fields that can be overridden with WATTSERVE_PROMQL_<FIELD upper-cased>.
TEMPLATE_FIELDS: Final = ("selector", "pods", "request_rate", "p95_latency", "p95_ttft",
                          "prompt_tps", "generation_tps", "in_flight", "queued", "energy_kepler",
                          "energy_dcgm", "energy_wattserve")
ENERGY_SOURCES: Final = ("auto", "kepler", "dcgm", "wattserve")
J_PER_KWH: Final = 3.6e6


@dataclass(frozen=True)
class AutoscaleSettings:
    """``prometheus_url`` empty: the autoscaler is off (``Scaled=False/AutoscalerDisabled``)."""

    prometheus_url: str = ""
    interval_s: float = 15.0
    energy_source: str = "auto"
    query_timeout_s: float = 5.0
    templates: QueryTemplates = field(default_factory=QueryTemplates)
    # Prometheus's scrape interval, when known: the window must cover 4 of them (None: not
    # checked; the operator cannot see the interval itself).
    scrape_interval_s: float | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.prometheus_url)

    @property
    def window_s(self) -> float:
        return window_seconds(self.templates.window)


def energy_preference(source: str) -> tuple[EnergySource, ...]:
    if source == "auto":
        return (EnergySource.KEPLER, EnergySource.DCGM, EnergySource.WATTSERVE)
    return (EnergySource(source),)


def _float(env: Mapping[str, str], name: str, default: float, minimum: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}: must be a number, got {raw!r}") from None
    if not math.isfinite(value) or value < minimum:
        raise SettingsError(f"{name}: must be >= {minimum:g}, got {raw}")
    return value


def settings_from_env(env: Mapping[str, str]) -> AutoscaleSettings:
    """The autoscaler's settings from WATTSERVE_* variables; bad values name the variable."""
    source = env.get(ENV_ENERGY_SOURCE, "").strip().lower() or "auto"
    if source not in ENERGY_SOURCES:
        raise SettingsError(f"{ENV_ENERGY_SOURCE}: must be one of {', '.join(ENERGY_SOURCES)}, "
                            f"got {source!r}")
    overrides: dict[str, Any] = {}
    for name in TEMPLATE_FIELDS:
        raw = env.get(ENV_TEMPLATE_PREFIX + name.upper(), "").strip()
        if raw:
            overrides[name] = raw
    window = env.get(ENV_WINDOW, "").strip()
    if window:
        overrides["window"] = window
    templates = dataclasses.replace(QueryTemplates(), **overrides,
                                    energy_preference=energy_preference(source))
    scrape = (_float(env, ENV_SCRAPE_INTERVAL, 0.0, 0.001)
              if env.get(ENV_SCRAPE_INTERVAL, "").strip() else None)
    check_templates(templates, scrape)
    return AutoscaleSettings(
        prometheus_url=env.get(ENV_PROMETHEUS_URL, "").strip(),
        interval_s=_float(env, ENV_INTERVAL, 15.0, 0.1),
        energy_source=source,
        query_timeout_s=_float(env, ENV_QUERY_TIMEOUT, 5.0, 0.1),
        templates=templates,
        scrape_interval_s=scrape,
    )


def check_templates(templates: QueryTemplates, scrape_interval_s: float | None = None) -> None:
    """Fail at start (naming the variable) on a bad window, one shorter than four scrape
    intervals (when the interval is given), or a template that cannot render."""
    try:
        window_seconds(templates.window)
        if scrape_interval_s is not None:
            check_window(templates.window, scrape_interval_s)
    except ValueError as err:
        raise SettingsError(f"{ENV_WINDOW}: {err}") from None
    try:
        render(templates, "namespace", "name")
    except (KeyError, IndexError, ValueError) as err:
        raise SettingsError(f"{ENV_TEMPLATE_PREFIX}*: a PromQL template does not render "
                            f"({type(err).__name__}: {err}); placeholders are {{namespace}}, "
                            "{name}, {window}, {sel}; literal braces are doubled") from None


def tick(md: ModelDeployment, body: Mapping[str, Any], cand: Candidate,
         state: ScalerState | None, obs: Observation | None, now: float, now_iso: str,
         window_s: float, error: str = "", rendered: int | None = None) -> TickOutcome:
    """:func:`wattserve.reconcile.scaling.tick` with the operator's spec adapter."""
    return scaling.tick(md, body, cand, state, obs, now, now_iso, window_s, error,
                        adapter=scaling_inputs, rendered=rendered)
