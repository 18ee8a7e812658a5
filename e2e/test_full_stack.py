"""The whole loop: helm install → kubectl apply → placement → real tokens → autoscaling →
faults → helm uninstall. Tests run in file order and share one stack (module scope).
"""

from __future__ import annotations

import asyncio
import glob
import os
import time
from pathlib import Path
from typing import Any

import yaml
from wattserve.api import load_yaml_documents, parse_model_deployment, parse_serving_pool
from wattserve.planning import plan

from e2e.harness.loadgen import LONG_PROMPT, run_load
from e2e.harness.stack import REPO, Stack, condition, md_status, wait_until

MODELS = sorted(glob.glob(str(REPO / "examples" / "models" / "*.yaml")))
# On kind (e2e/kind/README.md) GPU pods are placed but never start, and one small worker per
# pool holds fewer replicas than planned: those steps check placement, not readiness.
KIND = os.environ.get("WATTSERVE_E2E_PROVIDER", "local") == "kind"
SMOL = "smollm2-135m"
TIMINGS: dict[str, float] = {}


def _deployment(stack: Stack, name: str) -> dict[str, Any]:
    items = stack.kube.get("deployments", "-n", stack.namespace, "-l",
                           f"wattserve.dev/model-deployment={name}")["items"]
    assert len(items) == 1, f"expected one Deployment for {name}, got {len(items)}"
    return dict(items[0])


def _pods(stack: Stack, name: str) -> list[dict[str, Any]]:
    pods: list[dict[str, Any]] = stack.kube.get(
        "pods", "-n", stack.namespace, "-l", f"wattserve.dev/model-deployment={name}")["items"]
    return pods


def _node_pool(stack: Stack, node: str) -> str:
    labels = stack.kube.get("node", node)["metadata"]["labels"]
    return str(labels.get("wattserve.dev/pool", ""))


def _replicas(stack: Stack, name: str) -> int:
    return int(_deployment(stack, name)["spec"]["replicas"])


def test_helm_install_and_operator_as_the_chart_service_account(stack: Stack) -> None:
    stack.install_chart()
    pools = stack.kube.get("servingpools")["items"]
    assert {p["metadata"]["name"] for p in pools} >= {"cpu-general", "gpu-l4", "gpu-h100"}
    # the operator's identity is the chart's ServiceAccount, with the chart's RBAC only
    assert stack.sa_kubeconfig is not None
    whoami = stack.kube.run("kubectl", f"--kubeconfig={stack.sa_kubeconfig}", "auth", "whoami",
                            "-o", "jsonpath={.status.userInfo.username}").stdout
    assert whoami.startswith("system:serviceaccount:wattserve-system:")
    denied = stack.kube.run("kubectl", f"--kubeconfig={stack.sa_kubeconfig}", "get", "secrets",
                            "-A", check=False)
    assert denied.returncode != 0 and "forbidden" in denied.stderr
    stack.start_prometheus()
    stack.start_serving()
    stack.start_operator()


def test_examples_land_where_the_plan_says(stack: Stack) -> None:
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
        status = wait_until(
            lambda md=md: (s := md_status(stack.kube, stack.namespace, md.name))
            and condition(s, "Placed").get("status") == "True" and s,
            90, f"{md.name} Placed")
        assert status["placement"]["pool"] == expected.pool, md.name
        assert status["placement"]["engine"] == expected.engine
        if not KIND or md.name == SMOL:
            wait_until(lambda md=md: condition(md_status(stack.kube, stack.namespace, md.name),
                                               "Ready").get("status") == "True",
                       600 if KIND else 300, f"{md.name} Ready")
        if md.name == SMOL:
            TIMINGS["apply_to_ready_smollm2_s"] = time.monotonic() - started
        pods = _pods(stack, md.name)
        assert pods, md.name
        if KIND:  # only the pods that fit on the single small worker are bound
            pods = wait_until(lambda md=md: [p for p in _pods(stack, md.name)
                                             if p["spec"].get("nodeName")],
                              120, f"a {md.name} pod bound to a node")
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
                                 "smollm2-135m-oci": "cpu-local"}
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


def plan_pools(stack: Stack) -> dict[str, str]:
    items = stack.kube.get("md", "-n", stack.namespace)["items"]
    return {i["metadata"]["name"]: i["status"]["placement"]["pool"] for i in items}


def test_real_tokens_from_the_served_model(stack: Stack) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=stack.serving_url + "/v1", api_key="unused", timeout=60)
    reply = client.chat.completions.create(
        model="smollm2-135m-instruct", max_tokens=24, temperature=0,
        messages=[{"role": "user", "content": "What is the capital of France?"}])
    assert reply.choices[0].message.content
    assert reply.usage is not None and reply.usage.completion_tokens > 0


def test_load_step_scales_up_and_back_down(stack: Stack) -> None:
    stack.kube.kubectl("patch", "md", SMOL, "-n", stack.namespace, "--type=merge", "-p",
                       '{"spec": {"scaling": {"minReplicas": 1, "maxReplicas": 4, '
                       '"scaleUpDelaySeconds": 0, "scaleDownDelaySeconds": 20}}}')
    wait_until(lambda: _replicas(stack, SMOL) == 1, 120,
               "the idle SmolLM2 deployment to settle at minReplicas")
    start = time.monotonic()

    async def load() -> Any:
        return await run_load(stack.serving_url, "smollm2-135m-instruct", rate=3.0,
                              duration_s=60, max_tokens=64, prompt=LONG_PROMPT,
                              max_in_flight=16, max_requests=400)

    result = asyncio.run(_with_watch(load(), stack))
    assert result.ok > 0
    peak = TIMINGS.get("peak_replicas", 1)
    assert peak > 1, f"no scale-up during the load step ({result.ok} ok, {result.errors})"
    TIMINGS["scale_up_reaction_s"] = TIMINGS["first_scale_up_at"] - start
    # new replicas are real pods placed by the scheduler on the CPU pool
    wait_until(lambda: sum(1 for p in _pods(stack, SMOL)
                           if p["spec"].get("nodeName")) >= (1 if KIND else 2), 60,
               "scaled pods scheduled")
    for pod in _pods(stack, SMOL):
        if pod["spec"].get("nodeName"):
            assert _node_pool(stack, pod["spec"]["nodeName"]) == "cpu-general"
    stopped = time.monotonic()
    wait_until(lambda: _replicas(stack, SMOL) < peak, 180,
               "replicas to come back down after the load stops", interval=2)
    TIMINGS["scale_down_after_load_s"] = time.monotonic() - stopped
    status = md_status(stack.kube, stack.namespace, SMOL)
    observed = status.get("observed", {})
    assert observed, status
    assert status["current"]["source"] == "observed"
    assert float(status["current"]["joulesPerToken"]) > 0
    assert float(status["current"]["usdPerHour"]) > 0
    assert status.get("lastScale", {}).get("reason")


async def _with_watch(coro: Any, stack: Stack) -> Any:
    """Run the load while sampling the Deployment's replicas once a second."""
    task = asyncio.ensure_future(coro)
    peak = 1
    while not task.done():
        replicas = await asyncio.to_thread(_replicas, stack, SMOL)
        if replicas > peak:
            peak = replicas
            TIMINGS.setdefault("first_scale_up_at", time.monotonic())
        await asyncio.sleep(1)
    TIMINGS["peak_replicas"] = peak
    return task.result()


def test_prometheus_down_holds_replicas_and_says_why(stack: Stack) -> None:
    before = _replicas(stack, SMOL)
    earlier = len(_metrics_warnings(stack))  # e.g. the outage before the first scrape
    port = stack.stop_prometheus()
    status = wait_until(
        lambda: (s := md_status(stack.kube, stack.namespace, SMOL))
        and condition(s, "Scaled").get("reason") == "MetricsUnavailable" and s,
        60, "Scaled=Unknown/MetricsUnavailable")
    assert condition(status, "Scaled")["status"] == "Unknown"
    time.sleep(3 * stack.autoscale_interval)  # several ticks without metrics
    assert _replicas(stack, SMOL) == before
    warnings = _metrics_warnings(stack)
    assert len(warnings) == earlier + 1, warnings  # one event for this outage, not one a tick
    assert warnings[-1].get("count", 1) == 1, warnings
    stack.start_prometheus(port=port)
    wait_until(lambda: condition(md_status(stack.kube, stack.namespace, SMOL),
                                 "Scaled").get("reason") != "MetricsUnavailable",
               90, "metrics to come back")


def _metrics_warnings(stack: Stack) -> list[dict[str, Any]]:
    events = [e for e in stack.kube.get("events", "-n", stack.namespace)["items"]
              if e["involvedObject"]["name"] == SMOL and e["type"] == "Warning"
              and e.get("reason") == "MetricsUnavailable"]
    return sorted(events, key=lambda e: e.get("firstTimestamp") or "")


def test_operator_killed_and_restarted_converges_without_duplicates(stack: Stack) -> None:
    assert stack.operator is not None
    stack.kube.kubectl("patch", "md", "llama-8b-low", "-n", stack.namespace, "--type=merge",
                       "-p", '{"spec": {"expectedLoad": {"requestsPerSecond": "40"}}}')
    stack.operator.kill()  # mid-flight: the change above may or may not have been handled
    stack.start_operator()
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
        stack: Stack) -> None:
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


def test_helm_uninstall_leaves_only_the_crds(stack: Stack) -> None:
    stack.kube.kubectl("delete", "md", "--all", "-n", stack.namespace, "--wait=true",
                       timeout=120)
    wait_until(lambda: not stack.kube.get("deployments", "-n", stack.namespace)["items"],
               90, "children garbage-collected by owner references")
    assert stack.operator is not None
    stack.operator.stop()
    stack.uninstall_chart()
    leftovers = []
    for kind in ("servingpools", "clusterroles", "clusterrolebindings"):
        items = stack.kube.get(kind, "-l", "app.kubernetes.io/instance=wattserve")["items"]
        leftovers += [f"{kind}/{i['metadata']['name']}" for i in items]
    chart_pools = {"cpu-general", "gpu-l4", "gpu-h100"}
    leftovers += [f"servingpool/{i['metadata']['name']}"
                  for i in stack.kube.get("servingpools")["items"]
                  if i["metadata"]["name"] in chart_pools]
    for kind in ("deployments", "serviceaccounts", "services", "configmaps"):
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
