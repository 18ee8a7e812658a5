"""The whole loop on real pods (issue 11, item 4): helm install → kubectl apply → placement
→ real tokens → autoscaling → faults → helm uninstall. Tests run in file order and share one
stack (module scope, e2e/harness/realpods.py).

What is real: the operator is the chart's pod on the dev cluster's real node; SmolLM2
(examples/models/smollm2-135m-oci.yaml, placed on the real node's pool ``cpu-local``) is
served by the pods of the operator's Deployment and reached through its Service; Prometheus
discovers those pods with the chart PodMonitor's relabelling; scaling adds real pods.
What is not: the GPU and ``cpu-general`` examples land on kwok nodes, whose pods run nothing.
The steps that use them check placement, RBAC, events and bookkeeping, never serving.
"""

from __future__ import annotations

import asyncio
import glob
import ipaddress
import json
import time
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml
from wattserve.api import load_yaml_documents, parse_model_deployment, parse_serving_pool
from wattserve.devcluster.cni import POD_SUBNET
from wattserve.devcluster.nodeconfig import POOL_NAME as REAL_POOL
from wattserve.planning import plan

from e2e.harness.loadgen import LONG_PROMPT, run_load
from e2e.harness.realpods import RealPodStack, pod_ready
from e2e.harness.stack import CHART, REPO, condition, md_status, wait_until

MODELS = sorted(glob.glob(str(REPO / "examples" / "models" / "*.yaml")))
SMOL = "smollm2-135m-oci"  # the example served by real pods on the real node
SMOL_MODEL = "smollm2-135m-instruct"
SERVING_IMAGE = "ghcr.io/wattserve/wattserve-serving-cpu:0.1.0"
OPERATOR_IMAGE = "ghcr.io/wattserve/wattserve-operator:0.1.0"
SCALE_DOWN_DELAY_S = 30
LOAD_MAX_S = 180  # the load step ends this long after it started at the latest,
LOAD_AFTER_READY_S = 20  # or this long after the added pod is Ready
TIMINGS: dict[str, float] = {}


def _deployment(stack: RealPodStack, name: str) -> dict[str, Any]:
    items = stack.kube.get("deployments", "-n", stack.namespace, "-l",
                           f"wattserve.dev/model-deployment={name}")["items"]
    assert len(items) == 1, f"expected one Deployment for {name}, got {len(items)}"
    return dict(items[0])


def _pods(stack: RealPodStack, name: str) -> list[dict[str, Any]]:
    pods: list[dict[str, Any]] = stack.kube.get(
        "pods", "-n", stack.namespace, "-l", f"wattserve.dev/model-deployment={name}")["items"]
    return pods


def _ready_pods(stack: RealPodStack, name: str) -> list[dict[str, Any]]:
    return [p for p in _pods(stack, name)
            if pod_ready(p) and not p["metadata"].get("deletionTimestamp")]


def _node_pool(stack: RealPodStack, node: str) -> str:
    labels = stack.kube.get("node", node)["metadata"]["labels"]
    return str(labels.get("wattserve.dev/pool", ""))


def _replicas(stack: RealPodStack, name: str) -> int:
    return int(_deployment(stack, name)["spec"]["replicas"])


def _with_condition(stack: RealPodStack, name: str, kind: str, value: str) -> dict[str, Any]:
    """The ModelDeployment's status if its condition ``kind`` is ``value``, else {}."""
    status = md_status(stack.kube, stack.namespace, name)
    return status if condition(status, kind).get("status") == value else {}


def _assert_real_serving_pod(stack: RealPodStack, pod: dict[str, Any]) -> None:
    """A pod of the real node, running the serving image (not a kwok pod)."""
    assert _node_pool(stack, pod["spec"]["nodeName"]) == REAL_POOL, pod["spec"]["nodeName"]
    assert pod["spec"]["containers"][0]["image"] == SERVING_IMAGE
    started = pod["status"]["containerStatuses"][0]
    assert started["containerID"].startswith("containerd://"), started
    ip = ipaddress.ip_address(pod["status"]["podIP"])
    assert ip in ipaddress.ip_network(POD_SUBNET), ip  # the node's CNI, not kwok's range


def test_helm_install_runs_the_operator_as_the_charts_pod_on_the_real_node(
        stack: RealPodStack) -> None:
    stack.install_chart()
    pools = stack.kube.get("servingpools")["items"]
    assert {p["metadata"]["name"] for p in pools} >= {"cpu-general", "gpu-l4", "gpu-h100",
                                                      REAL_POOL}
    assert stack.operator is not None
    pod = stack.operator.ready_pod()
    assert _node_pool(stack, pod["spec"]["nodeName"]) == REAL_POOL
    assert pod["spec"]["containers"][0]["image"] == OPERATOR_IMAGE
    # the operator's identity is the chart's ServiceAccount, with the chart's RBAC only
    sa = pod["spec"]["serviceAccountName"]
    assert stack.sa_kubeconfig is not None
    whoami = stack.kube.run("kubectl", f"--kubeconfig={stack.sa_kubeconfig}", "auth", "whoami",
                            "-o", "jsonpath={.status.userInfo.username}").stdout
    assert whoami == f"system:serviceaccount:wattserve-system:{sa}"
    denied = stack.kube.run("kubectl", f"--kubeconfig={stack.sa_kubeconfig}", "get", "secrets",
                            "-A", check=False)
    assert denied.returncode != 0 and "forbidden" in denied.stderr


def test_examples_land_where_the_plan_says(stack: RealPodStack) -> None:
    """Placement of every example. Only SmolLM2-oci runs (real node); the others' pods are
    kwok pods that run nothing: their Ready is the simulated one (no serving is tested)."""
    started = time.monotonic()
    stack.kube.kubectl("apply", "-n", stack.namespace, "-f", str(REPO / "examples" / "models"))
    pools = [parse_serving_pool(d) for d in
             load_yaml_documents((REPO / "examples" / "pools.yaml").read_text())]
    for path in MODELS:
        doc = yaml.safe_load(Path(path).read_text())
        doc["metadata"]["namespace"] = stack.namespace
        md = parse_model_deployment(doc)
        expected = plan(md, pools).chosen
        assert expected is not None, md.name
        status = wait_until(partial(_with_condition, stack, md.name, "Placed", "True"), 90,
                            f"{md.name} Placed")
        assert status["placement"]["pool"] == expected.pool, md.name
        assert status["placement"]["engine"] == expected.engine
        wait_until(partial(_with_condition, stack, md.name, "Ready", "True"), 300,
                   f"{md.name} Ready")
        if md.name == SMOL:
            TIMINGS["apply_to_ready_smollm2_real_pod_s"] = time.monotonic() - started
        pods = _pods(stack, md.name)
        assert pods, md.name
        for pod in pods:
            node = pod["spec"].get("nodeName")
            assert node and _node_pool(stack, node) == expected.pool, (md.name, node)
            limits = pod["spec"]["containers"][0]["resources"].get("limits", {})
            if expected.accelerator != "cpu":
                assert int(limits["nvidia.com/gpu"]) == expected.tensor_parallel, md.name
            else:
                assert "nvidia.com/gpu" not in limits
    # the placements users see
    assert plan_pools(stack) == {"smollm2-135m": "cpu-general", "llama-70b-bf16": "gpu-h100",
                                 "llama-70b-fp8": "gpu-h100", "llama-8b-low": "gpu-l4",
                                 "llama-8b-high": "gpu-h100", "minilm-embed": "cpu-general",
                                 # the model-image example at 0.1 req/s: the real node
                                 SMOL: REAL_POOL}
    (real,) = _ready_pods(stack, SMOL)
    _assert_real_serving_pod(stack, real)
    table = stack.kube.kubectl("get", "md", "-n", stack.namespace).stdout
    header, *rows = table.strip().splitlines()
    assert header.split()[:9] == ["NAME", "POOL", "ENGINE", "REPLICAS", "P95", "J/TOKEN",
                                  "$/HOUR", "READY", "SCALED"]
    for row in rows:
        cells = row.split()
        assert len(cells) == 10 and "<none>" not in cells, row
    events = stack.kube.get("events", "-n", stack.namespace,
                            "--field-selector", "reason=Placed")["items"]
    names = {yaml.safe_load(Path(m).read_text())["metadata"]["name"] for m in MODELS}
    assert {e["involvedObject"]["name"] for e in events} >= names


def plan_pools(stack: RealPodStack) -> dict[str, str]:
    items = stack.kube.get("md", "-n", stack.namespace)["items"]
    return {i["metadata"]["name"]: i["status"]["placement"]["pool"] for i in items}


def _served_by_pod(stack: RealPodStack) -> dict[str, float]:
    """Requests each SmolLM2 pod answered, from Prometheus (found by pod discovery)."""
    assert stack.prometheus is not None
    rows = stack.prometheus.query(
        f'sum by (pod, node) (wattserve_requests_total{{model_deployment="{SMOL}"}})')
    return {r["metric"].get("pod", "") + "@" + r["metric"].get("node", ""):
            float(r["value"][1]) for r in rows}


def test_real_tokens_from_the_real_pod_through_its_service(stack: RealPodStack) -> None:
    from openai import OpenAI

    url = stack.service_url(SMOL)
    client = OpenAI(base_url=url + "/v1", api_key="unused", timeout=60)
    reply = client.chat.completions.create(
        model=SMOL_MODEL, max_tokens=24, temperature=0,
        messages=[{"role": "user", "content": "What is the capital of France?"}])
    assert reply.choices[0].message.content
    assert reply.usage is not None and reply.usage.completion_tokens > 0
    # The image serves the whole API: a forced tool call, log probabilities, two choices.
    called = client.chat.completions.create(
        model=SMOL_MODEL, max_tokens=40, temperature=0,
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[{"type": "function", "function": {"name": "weather", "parameters": {
            "type": "object", "properties": {"city": {"type": "string"}},
            "required": ["city"], "additionalProperties": False}}}],
        tool_choice={"type": "function", "function": {"name": "weather"}})
    (call,) = called.choices[0].message.tool_calls or []
    assert call.function.name == "weather" and set(json.loads(call.function.arguments)) == {
        "city"}
    sampled = client.chat.completions.create(
        model=SMOL_MODEL, max_tokens=4, n=2, logprobs=True, top_logprobs=2,
        messages=[{"role": "user", "content": "Hi"}])
    assert [c.index for c in sampled.choices] == [0, 1]
    assert all(c.logprobs and c.logprobs.content for c in sampled.choices)
    # Prometheus found the pod by Kubernetes pod discovery, labelled as the PodMonitor says
    (pod,) = _ready_pods(stack, SMOL)
    key = f"{pod['metadata']['name']}@{pod['spec']['nodeName']}"
    served = wait_until(lambda: _served_by_pod(stack).get(key), 30,
                        f"Prometheus to scrape {key} through pod discovery")
    assert served >= 1


def test_load_step_adds_a_real_pod_that_takes_load(stack: RealPodStack) -> None:
    stack.kube.kubectl("patch", "md", SMOL, "-n", stack.namespace, "--type=merge", "-p",
                       '{"spec": {"scaling": {"minReplicas": 1, "maxReplicas": 2, '
                       '"scaleUpDelaySeconds": 0, '
                       f'"scaleDownDelaySeconds": {SCALE_DOWN_DELAY_S}}}}}}}')
    wait_until(lambda: _replicas(stack, SMOL) == 1 and len(_ready_pods(stack, SMOL)) == 1,
               120, "the idle SmolLM2 deployment to settle at one Ready pod")
    (first,) = _ready_pods(stack, SMOL)
    url = stack.service_url(SMOL)
    before = _served_by_pod(stack)
    start = time.monotonic()

    stop = asyncio.Event()

    async def load() -> Any:
        # open-loop load until the added pod has served for a while (bounded)
        return await run_load(url, SMOL_MODEL, rate=3.0, duration_s=LOAD_MAX_S, max_tokens=64,
                              prompt=LONG_PROMPT, max_in_flight=16, max_requests=600,
                              allowed_hosts=frozenset({urlparse(url).hostname or ""}),
                              stop=stop, keepalive=False)

    result = asyncio.run(_with_watch(load(), stack, stop))
    assert result.ok > 0, result.errors
    peak = TIMINGS.get("peak_replicas", 1)
    assert peak == 2, f"no scale-up during the load step ({result.ok} ok, {result.errors})"
    TIMINGS["scale_up_reaction_s"] = TIMINGS["first_scale_up_at"] - start
    if "second_pod_ready_at" in TIMINGS:
        TIMINGS["load_step_to_new_real_pod_ready_s"] = TIMINGS["second_pod_ready_at"] - start
    TIMINGS["load_step_p95_s"] = result.percentile(0.95)
    # the added replica is a real pod on the real node that answered part of the load
    pods = wait_until(lambda: len(_ready_pods(stack, SMOL)) == 2 and _ready_pods(stack, SMOL),
                      120, "two Ready SmolLM2 pods")
    (new,) = [p for p in pods if p["metadata"]["uid"] != first["metadata"]["uid"]]
    _assert_real_serving_pod(stack, new)
    key = f"{new['metadata']['name']}@{new['spec']['nodeName']}"
    try:
        wait_until(lambda: _served_by_pod(stack).get(key, 0) - before.get(key, 0), 30,
                   f"requests answered by the new pod {key}")
    except TimeoutError as exc:
        raise AssertionError(f"{exc}; answered by pod: {_served_by_pod(stack)}; timings "
                             f"{TIMINGS}; load {result.ok} ok, {result.errors}") from None
    status = md_status(stack.kube, stack.namespace, SMOL)
    assert status.get("observed"), status
    assert status["current"]["source"] == "observed"
    assert float(status["current"]["joulesPerToken"]) > 0
    assert float(status["current"]["usdPerHour"]) > 0
    assert status.get("lastScale", {}).get("reason")
    # left at two replicas for the next step (the scale-down is checked there)
    assert _replicas(stack, SMOL) == 2


async def _with_watch(coro: Any, stack: RealPodStack, stop: asyncio.Event) -> Any:
    """Run the load while sampling the Deployment's replicas once a second; stop it once
    the second pod has been Ready for LOAD_AFTER_READY_S."""
    task = asyncio.ensure_future(coro)
    peak = 1
    while not task.done():
        replicas = await asyncio.to_thread(_replicas, stack, SMOL)
        if replicas > peak:
            peak = replicas
            TIMINGS.setdefault("first_scale_up_at", time.monotonic())
        if (peak > 1 and "second_pod_ready_at" not in TIMINGS
                and len(await asyncio.to_thread(_ready_pods, stack, SMOL)) >= 2):
            TIMINGS["second_pod_ready_at"] = time.monotonic()
        ready_at = TIMINGS.get("second_pod_ready_at")
        if ready_at is not None and time.monotonic() - ready_at > LOAD_AFTER_READY_S:
            stop.set()
        await asyncio.sleep(1)
    TIMINGS["peak_replicas"] = peak
    return task.result()


def test_prometheus_stopped_holds_the_real_replicas_then_scaling_resumes(
        stack: RealPodStack) -> None:
    """Fail-static: with the load gone the autoscaler would scale down after
    scaleDownDelaySeconds; without metrics it must hold the two real pods instead."""
    assert _replicas(stack, SMOL) == 2
    earlier = len(_metrics_warnings(stack))  # e.g. the outage before the first scrape
    port = stack.stop_prometheus()
    stopped = time.monotonic()
    status = wait_until(
        lambda: (s := md_status(stack.kube, stack.namespace, SMOL))
        and condition(s, "Scaled").get("reason") == "MetricsUnavailable" and s,
        60, "Scaled=Unknown/MetricsUnavailable")
    assert condition(status, "Scaled")["status"] == "Unknown"
    assert "keeping 2 replicas" in condition(status, "Scaled")["message"], status
    # hold well past the scale-down delay (which would otherwise have ended by now)
    hold_until = stopped + SCALE_DOWN_DELAY_S + 4 * stack.autoscale_interval
    while time.monotonic() < hold_until:
        assert _replicas(stack, SMOL) == 2, "replicas changed without metrics"
        time.sleep(2)
    assert len(_ready_pods(stack, SMOL)) == 2
    warnings = _metrics_warnings(stack)
    assert len(warnings) == earlier + 1, warnings  # one event for this outage, not one a tick
    assert warnings[-1].get("count", 1) == 1, warnings
    assert "keeping 2 replicas" in warnings[-1]["message"], warnings[-1]
    restarted = time.monotonic()
    stack.start_prometheus(port=port)
    wait_until(lambda: condition(md_status(stack.kube, stack.namespace, SMOL),
                                 "Scaled").get("reason") != "MetricsUnavailable",
               90, "metrics to come back")
    # scaling resumes: the idle model goes back to one real pod
    wait_until(lambda: _replicas(stack, SMOL) == 1, SCALE_DOWN_DELAY_S + 120,
               "the scale-down once metrics are back", interval=2)
    TIMINGS["prometheus_back_to_scale_down_s"] = time.monotonic() - restarted
    wait_until(lambda: len(_pods(stack, SMOL)) == 1, 120, "the removed pod gone")


def _metrics_warnings(stack: RealPodStack) -> list[dict[str, Any]]:
    events = [e for e in stack.kube.get("events", "-n", stack.namespace)["items"]
              if e["involvedObject"]["name"] == SMOL and e["type"] == "Warning"
              and e.get("reason") == "MetricsUnavailable"]
    return sorted(events, key=lambda e: e.get("firstTimestamp") or "")


def test_operator_pod_sigkilled_mid_change_converges_without_duplicates(
        stack: RealPodStack) -> None:
    assert stack.operator is not None
    stack.kube.kubectl("patch", "md", "llama-8b-low", "-n", stack.namespace, "--type=merge",
                       "-p", '{"spec": {"expectedLoad": {"requestsPerSecond": "40"}}}')
    before = stack.operator.kill()  # mid-flight: the change may or may not have been handled
    stack.operator.wait_restarted(before)
    wait_until(lambda: md_status(stack.kube, stack.namespace, "llama-8b-low")
               .get("placement", {}).get("pool") == "gpu-h100", 90,
               "the re-plan after the restart")
    for path in MODELS:
        name = yaml.safe_load(Path(path).read_text())["metadata"]["name"]
        deployments = stack.kube.get("deployments", "-n", stack.namespace, "-l",
                                     f"wattserve.dev/model-deployment={name}")["items"]
        services = stack.kube.get("services", "-n", stack.namespace, "-l",
                                  f"wattserve.dev/model-deployment={name}")["items"]
        assert (len(deployments), len(services)) == (1, 1), name
    wait_until(lambda: all(condition(i.get("status", {}), "Ready").get("status") == "True"
                           for i in stack.kube.get("md", "-n", stack.namespace)["items"]),
               120, "every ModelDeployment Ready again")


def test_the_operator_keeps_its_memory_on_the_object_under_the_charts_rbac(
        stack: RealPodStack) -> None:
    """The autoscaler's state survives a restart because the operator, with the chart's
    ServiceAccount, may write it (the scaler-state annotation): a 403 here once lost it."""
    op = stack.operator
    assert op is not None
    annotations = stack.kube.get("md", SMOL, "-n", stack.namespace)["metadata"].get(
        "annotations") or {}
    assert "wattserve.dev/scaler-state" in annotations, sorted(annotations)
    log = stack.kube.kubectl("logs", op.ready_pod()["metadata"]["name"], "-n",
                             "wattserve-system").stdout
    assert "forbidden" not in log, [line for line in log.splitlines() if "forbidden" in line]


def test_each_servingpool_says_what_is_placed_on_it_under_the_charts_rbac(
        stack: RealPodStack) -> None:
    """`kubectl get servingpools` counts the ModelDeployments each pool holds: the operator,
    with the chart's ServiceAccount, writes servingpools/status (a rule of its own)."""
    placed = Counter(plan_pools(stack).values())

    def booked() -> dict[str, Any] | None:
        items = stack.kube.get("servingpools")["items"]
        got = {p["metadata"]["name"]: p.get("status") or {} for p in items}
        counts = {name: st.get("modelDeployments") for name, st in got.items()}
        return got if all(counts.get(pool) == n for pool, n in placed.items()) else None

    got = wait_until(booked, 60, f"ServingPool status counting {dict(placed)}")
    for pool in placed:
        st = got[pool]
        assert st["replicas"] >= 1 and st["usage"].endswith("committed"), (pool, st)
        accepted = next(c for c in st["conditions"] if c["type"] == "Accepted")
        assert accepted["status"] == "True", (pool, accepted)
    table = stack.kube.kubectl("get", "servingpools").stdout.splitlines()
    assert {"MODELS", "REPLICAS", "USAGE"} <= set(table[0].split()), table


LEASE = "wattserve-leader"  # the chart's leader-election Lease (<fullname>-leader)


def _lease_holder_pod(stack: RealPodStack) -> str:
    """The pod whose operator holds the Lease (identities are wattserve@<pod>/<random>)."""
    lease = stack.kube.get("lease", LEASE, "-n", "wattserve-system")
    holder = str(lease["spec"].get("holderIdentity") or "")
    return holder.removeprefix("wattserve@").rpartition("/")[0]


def _operator_replicas(stack: RealPodStack, replicas: int) -> None:
    stack.kube.helm("upgrade", "wattserve", str(CHART), "-n",
                    "wattserve-system", "--reuse-values", "--set",
                    f"operator.replicas={replicas}", "--wait", "--timeout", "240s", timeout=300)
    op = stack.operator
    assert op is not None
    wait_until(lambda: len(pods := op.pods()) == replicas and all(map(pod_ready, pods)),
               180, f"{replicas} operator pods, all Ready")


def test_two_operator_replicas_one_leads_and_a_deleted_leader_hands_over_at_once(
        stack: RealPodStack) -> None:
    """The chart's leader election on real pods: a second replica follows; deleting the
    leader's pod (SIGTERM, as a drain or a rollout does) releases the Lease, and the
    follower leads and reconciles well before the 15 s lease would have run out."""
    assert stack.operator is not None
    _operator_replicas(stack, 2)
    pods = {p["metadata"]["name"] for p in stack.operator.pods()}
    leader = wait_until(lambda: _lease_holder_pod(stack) in pods and _lease_holder_pod(stack),
                        30, "one of the two operator pods holding the Lease")
    deleted = time.monotonic()
    stack.kube.kubectl("delete", "pod", leader, "-n", "wattserve-system", "--wait=false")
    # The follower, or the pod that replaces the deleted one: whichever tries first after
    # the release.
    new = wait_until(lambda: _lease_holder_pod(stack) not in ("", leader)
                     and _lease_holder_pod(stack), 60, "another pod to hold the Lease",
                     interval=0.2)
    TIMINGS["operator_handover_s"] = handover = time.monotonic() - deleted
    log = stack.kube.kubectl("logs", leader, "-n", "wattserve-system", check=False).stdout
    who = "the follower" if new in pods else "the deleted pod's replacement"
    print(f"\nthe Lease passed from {leader} to {new} ({who}) in {handover:.1f}s; the old "
          f"leader's last log lines:\n{log[-1500:]}")
    assert handover < 15, f"the Lease passed {handover:.1f}s after the delete: not released"
    stack.kube.kubectl("patch", "md", "llama-8b-low", "-n", stack.namespace, "--type=merge",
                       "-p", '{"spec": {"expectedLoad": {"requestsPerSecond": "30"}}}')
    md = stack.kube.get("md", "llama-8b-low", "-n", stack.namespace)
    wait_until(lambda: md_status(stack.kube, stack.namespace, "llama-8b-low")
               .get("observedGeneration") == md["metadata"]["generation"], 60,
               "the change reconciled by the new leader")
    print(f"\noperator handover after the leader pod's deletion: {handover:.1f}s")
    _operator_replicas(stack, 1)


BAD = """apiVersion: wattserve.dev/v1alpha1
kind: ModelDeployment
metadata: {name: bad-scaling}
spec:
  model: {name: m, source: "hf://a/b", parameters: 8B, quantization: fp8}
  slo: {latencyP95Ms: 1000}
  scaling: {minReplicas: 5, maxReplicas: 2}
"""
IMPOSSIBLE = """apiVersion: wattserve.dev/v1alpha1
kind: ModelDeployment
metadata: {name: too-big}
spec:
  model: {name: m, source: "hf://a/b", parameters: 2T, quantization: bf16}
  slo: {latencyP95Ms: 1000}
"""


def test_bad_model_deployments_are_rejected_or_answered_and_disturb_nothing(
        stack: RealPodStack) -> None:
    before = {d["metadata"]["name"]: d["metadata"]["resourceVersion"] for d in
              stack.kube.get("deployments", "-n", stack.namespace)["items"]}
    rejected = stack.kube.kubectl("apply", "-n", stack.namespace, "-f", "-", input=BAD,
                                  check=False)
    assert rejected.returncode != 0 and "minReplicas" in rejected.stderr
    stack.kube.kubectl("apply", "-n", stack.namespace, "-f", "-", input=IMPOSSIBLE)
    status = wait_until(
        lambda: (s := md_status(stack.kube, stack.namespace, "too-big"))
        and condition(s, "Placed").get("status") == "False" and s, 60, "too-big Placed=False")
    assert condition(status, "Placed")["reason"] == "NoFeasiblePool"
    assert stack.kube.get("deployments", "-n", stack.namespace, "-l",
                          "wattserve.dev/model-deployment=too-big")["items"] == []
    warnings = [e for e in stack.kube.get("events", "-n", stack.namespace)["items"]
                if e["involvedObject"]["name"] == "too-big" and e["type"] == "Warning"]
    assert warnings
    after = {d["metadata"]["name"]: d["metadata"]["resourceVersion"] for d in
             stack.kube.get("deployments", "-n", stack.namespace)["items"]}
    untouched = [n for n in before if not n.startswith(SMOL)]  # SMOL's replicas may scale
    assert all(after.get(n) == before[n] for n in untouched), "other workloads were disturbed"


def test_helm_uninstall_leaves_only_the_crds(stack: RealPodStack) -> None:
    stack.kube.kubectl("delete", "md", "--all", "-n", stack.namespace, "--wait=true",
                       timeout=120)
    wait_until(lambda: not stack.kube.get("deployments", "-n", stack.namespace)["items"],
               90, "children garbage-collected by owner references")
    stack.uninstall_chart()
    wait_until(lambda: not stack.kube.get("pods", "-n", "wattserve-system")["items"], 120,
               "the operator pod gone")
    leftovers = []
    for kind in ("servingpools", "clusterroles", "clusterrolebindings"):
        items = stack.kube.get(kind, "-l", "app.kubernetes.io/instance=wattserve")["items"]
        leftovers += [f"{kind}/{i['metadata']['name']}" for i in items]
    chart_pools = {"cpu-general", "gpu-l4", "gpu-h100"}
    leftovers += [f"servingpool/{i['metadata']['name']}"
                  for i in stack.kube.get("servingpools")["items"]
                  if i["metadata"]["name"] in chart_pools]
    for kind in ("deployments", "serviceaccounts", "services", "configmaps", "roles",
                 "rolebindings"):
        items = stack.kube.get(kind, "-n", "wattserve-system", "-l",
                               "app.kubernetes.io/instance=wattserve")["items"]
        leftovers += [f"{kind}/{i['metadata']['name']}" for i in items]
    assert leftovers == []
    crds = {c["metadata"]["name"] for c in stack.kube.get("crds")["items"]}
    assert {"modeldeployments.wattserve.dev", "servingpools.wattserve.dev"} <= crds
    _write_timings()


def _write_timings() -> None:
    out = Path(str(REPO / ".e2e-timings.yaml"))
    out.write_text(yaml.safe_dump({k: round(v, 1) for k, v in TIMINGS.items()}))
