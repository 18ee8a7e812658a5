"""PromQL for one ModelDeployment, rendered from configurable templates.

Every template is a plain ``str.format`` string with the placeholders ``{namespace}``,
``{name}`` and ``{window}`` (and ``{sel}``, the serving-series label selector built from
``contract.COMMON_LABELS``, and ``{pods}``, the deployment's serving pods). Defaults are
built from the metric names in :mod:`wattserve.contract`, so a renamed metric changes here
automatically.

Energy comes from the first available source in ``QueryTemplates.energy_preference``:

* ``kepler`` - ``kepler_pod_cpu_joules_total`` (RAPL zones ``package`` + ``dram`` only: Kepler
  exports every zone and they overlap, package covers core and uncore, psys covers all) +
  ``kepler_pod_gpu_joules_total``, labels ``pod_namespace``/``pod_name`` (Kepler >= 0.10);
* ``dcgm`` - ``DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION`` (millijoules, divided by 1000) of the
  GPUs the deployment's pods hold. dcgm-exporter's own ``pod``/``namespace`` labels become
  ``exported_pod``/``exported_namespace`` under its chart's scrape (``honorLabels: false``);
  both spellings are matched;
* ``wattserve`` - the serving app's own ``wattserve_energy_joules_total``.

Pods are matched exactly, never by a name prefix: the energy series are joined
(``and on (...)``) with the ``pod`` label of the deployment's own serving series
(``{pods}``: ``wattserve_requests_in_flight`` of the deployment, one series per serving pod,
with the ``pod`` target label every Kubernetes scrape adds). Pods that serve nothing (the Ray
head) are not counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from wattserve import contract


class EnergySource(StrEnum):
    KEPLER = "kepler"
    DCGM = "dcgm"
    WATTSERVE = "wattserve"


_SEL = (
    f'{contract.LABEL_NAMESPACE}="{{namespace}}", '
    f'{contract.LABEL_MODEL_DEPLOYMENT}="{{name}}"'
)


# One series per serving pod of the deployment, with its namespace and pod labels.
_PODS = f"max by (namespace, pod) ({contract.REQUESTS_IN_FLIGHT}{{{{{{sel}}}}}})"


def _renamed(vector: str, ns_label: str, pod_label: str) -> str:
    """``vector`` with its namespace/pod labels copied to the exporter's label names."""
    return (f'label_replace(label_replace({vector}, "{ns_label}", "$1", "namespace", "(.+)"), '
            f'"{pod_label}", "$1", "pod", "(.+)")')


def _joined(metric: str, ns_label: str, pod_label: str, extra: str = "") -> str:
    """``sum(rate(metric))`` over exactly the deployment's pods (a join, not a name regex)."""
    pods = "{pods}" if (ns_label, pod_label) == ("namespace", "pod") else _renamed(
        "{pods}", ns_label, pod_label)
    return (f'sum(rate({metric}{{{{{ns_label}="{{namespace}}"{extra}}}}}[{{window}}]) '
            f"and on ({ns_label}, {pod_label}) {pods})")


_KEPLER = (
    _joined("kepler_pod_cpu_joules_total", "pod_namespace", "pod_name",
            ', zone=~"package|dram"')
    + " + ("
    + _joined("kepler_pod_gpu_joules_total", "pod_namespace", "pod_name")
    + " or vector(0))"
)
_DCGM = (
    "("
    + _joined("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "exported_namespace", "exported_pod")
    + " or "
    + _joined("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "namespace", "pod")
    + ") / 1000"
)


def _quantile(metric: str, q: float = 0.95) -> str:
    return (
        f"histogram_quantile({q}, sum by (le) "
        f"(rate({metric}_bucket{{{{{{sel}}}}}}[{{window}}])))"
    )


def _rate(metric: str) -> str:
    return f"sum(rate({metric}{{{{{{sel}}}}}}[{{window}}]))"


def _gauge(metric: str) -> str:
    return f"sum({metric}{{{{{{sel}}}}}})"


@dataclass(frozen=True)
class QueryTemplates:
    """Template strings; override any field to adapt to a different metrics pipeline."""

    selector: str = _SEL
    request_rate: str = _rate(contract.REQUESTS_TOTAL)
    p95_latency: str = _quantile(contract.REQUEST_LATENCY_SECONDS)
    p95_ttft: str = _quantile(contract.TIME_TO_FIRST_TOKEN_SECONDS)
    prompt_tps: str = _rate(contract.PROMPT_TOKENS_TOTAL)
    generation_tps: str = _rate(contract.GENERATION_TOKENS_TOTAL)
    in_flight: str = _gauge(contract.REQUESTS_IN_FLIGHT)
    queued: str = _gauge(contract.REQUESTS_QUEUED)
    # Sequences in the servers on average over the window (Little's law: the duration
    # histogram's sum grows by one second per request in a server per second).
    busy: str = _rate(contract.REQUEST_LATENCY_SECONDS + "_sum")
    pods: str = _PODS
    energy_kepler: str = _KEPLER
    energy_dcgm: str = _DCGM
    energy_wattserve: str = _rate(contract.ENERGY_JOULES_TOTAL)
    energy_preference: tuple[EnergySource, ...] = (
        EnergySource.KEPLER,
        EnergySource.DCGM,
        EnergySource.WATTSERVE,
    )
    window: str = "1m"


@dataclass(frozen=True)
class DeploymentQueries:
    """The rendered PromQL for one ModelDeployment (what :func:`render` returns)."""

    request_rate: str
    p95_latency: str
    p95_ttft: str
    prompt_tps: str
    generation_tps: str
    in_flight: str
    queued: str
    busy: str
    energy_watts: dict[EnergySource, str] = field(default_factory=dict)
    energy_preference: tuple[EnergySource, ...] = ()


_WINDOW_SECONDS = {"s": 1, "m": 60, "h": 3600}


def window_seconds(window: str) -> float:
    """``"1m"`` -> 60.0; raises ValueError on anything that is not ``<int><s|m|h>``."""
    if len(window) < 2 or window[-1] not in _WINDOW_SECONDS or not window[:-1].isdigit():
        raise ValueError(f"window must look like 30s, 1m or 1h, got {window!r}")
    return float(int(window[:-1]) * _WINDOW_SECONDS[window[-1]])


def check_window(window: str, scrape_interval_s: float) -> None:
    """A rate() window shorter than 4 scrape intervals is noisy or empty: refuse it."""
    if window_seconds(window) < 4 * scrape_interval_s:
        raise ValueError(
            f"window {window} is shorter than 4 scrape intervals of {scrape_interval_s:g}s"
        )


def render(t: QueryTemplates, namespace: str, name: str) -> DeploymentQueries:
    """Fill the templates for one deployment. Label values are escaped for PromQL."""
    ns = _escape(namespace)
    nm = _escape(name)
    sel = t.selector.format(namespace=ns, name=nm)

    pods = t.pods.format(namespace=ns, name=nm, window=t.window, sel=sel)

    def fill(template: str) -> str:
        return template.format(namespace=ns, name=nm, window=t.window, sel=sel, pods=pods)

    return DeploymentQueries(
        request_rate=fill(t.request_rate),
        p95_latency=fill(t.p95_latency),
        p95_ttft=fill(t.p95_ttft),
        prompt_tps=fill(t.prompt_tps),
        generation_tps=fill(t.generation_tps),
        in_flight=fill(t.in_flight),
        queued=fill(t.queued),
        busy=fill(t.busy),
        energy_watts={
            EnergySource.KEPLER: fill(t.energy_kepler),
            EnergySource.DCGM: fill(t.energy_dcgm),
            EnergySource.WATTSERVE: fill(t.energy_wattserve),
        },
        energy_preference=t.energy_preference,
    )


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')
