"""What objects that are not ours cost the operator: two revisions side by side, one run.

A namespace the operator watches also holds N Deployments (0 replicas) and N Services that
are not wattserve's (each Service gets an EndpointSlice from the EndpointSlice
controller). Each revision's operator (``--base REV``, checked out with ``git worktree``,
and this tree) is started in turn against the same objects; measured per revision:

* start-up: CPU seconds from the process's start until it is healthy and 3 s quiet;
* churn: CPU seconds while every foreign Deployment is changed once (an annotation, 32 in
  flight) and 5 s after;
* peak RSS (VmHWM).

An operator whose watches are filtered server-side pays nothing for either (before
``selector_of``'s fix, kopf streamed every Deployment and EndpointSlice in reach and
dropped them client-side).

    python benchmarks/operator_foreign.py --base HEAD~1 --count 1000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import kopf

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO / "operator"))

from operator_scale import (  # noqa: E402
    NAMESPACE,
    OperatorProcess,
    _fresh_namespace,
    _kubectl,
    _say,
)
from wattserve.controller.kubeapi import ApiError, KubeApi  # noqa: E402


def _foreign(count: int) -> list[dict[str, Any]]:
    objs: list[dict[str, Any]] = []
    for i in range(count):
        labels = {"app": f"foreign-{i}"}
        objs.append({"apiVersion": "apps/v1", "kind": "Deployment",
                     "metadata": {"name": f"foreign-{i}", "namespace": NAMESPACE,
                                  "labels": labels},
                     "spec": {"replicas": 0, "selector": {"matchLabels": labels},
                              "template": {"metadata": {"labels": labels},
                                           "spec": {"containers": [{"name": "c",
                                                                    "image": "none"}]}}}})
        objs.append({"apiVersion": "v1", "kind": "Service",
                     "metadata": {"name": f"foreign-{i}", "namespace": NAMESPACE,
                                  "labels": labels},
                     "spec": {"selector": labels, "ports": [{"port": 80}]}})
    return objs


async def _all(api: KubeApi, calls: list[Any]) -> None:
    sem = asyncio.Semaphore(32)

    async def one(call: Any) -> None:
        async with sem:
            await call()

    await asyncio.gather(*(one(c) for c in calls))


async def measure(api: KubeApi, source: Path, count: int, round_: int,
                  log: Path) -> dict[str, float]:
    op = OperatorProcess(log, workers=16, source=source)
    op.start()
    try:
        time.sleep(3)
        out = {"startup_cpu": op.cpu_seconds()}
        before = op.cpu_seconds()
        await _all(api, [
            (lambda i=i: api.patch("apps/v1", "Deployment", NAMESPACE, f"foreign-{i}",
                                   {"metadata": {"annotations": {"bench/round": str(round_)}}}))
            for i in range(count)])
        time.sleep(5)
        out["churn_cpu"] = op.cpu_seconds() - before
        out["peak_rss_mb"] = op.peak_rss_mb()
        return out
    finally:
        op.stop()


async def run(base: str, count: int, log: Path) -> dict[str, dict[str, float]]:
    _kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    _fresh_namespace(NAMESPACE)
    api = KubeApi(lambda: kopf.login_with_kubeconfig(settings=kopf.OperatorSettings()))
    with tempfile.TemporaryDirectory() as tmp:
        worktree = Path(tmp) / "base"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(worktree),
                        base], check=True, capture_output=True)
        try:
            _say(f"creating {count} foreign Deployments and Services in {NAMESPACE}")
            await _all(api, [(lambda o=o: api.apply(o)) for o in _foreign(count)])
            while int(_kubectl("get", "endpointslices", "-n", NAMESPACE, "--no-headers",
                               "-o", "name").count("\n")) < count:
                time.sleep(2)
            results = {}
            for round_, (name, source) in enumerate(
                    ((f"base {base}", worktree / "operator"), ("this tree", REPO / "operator"))):
                _say(f"operator ({name}): start-up, then {count} foreign changes")
                results[name] = await measure(api, source, count, round_, log)
            return results
        finally:
            await api.close()
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force",
                            str(worktree)], capture_output=True, check=False)
            subprocess.run(["kubectl", "delete", "namespace", NAMESPACE, "--wait=false"],
                           capture_output=True, check=False)


def table(results: dict[str, dict[str, float]], count: int) -> str:
    names = list(results)
    lines = [f"{count} foreign Deployments + {count} foreign Services (and their "
             "EndpointSlices) in the watched namespace:", "",
             "| figure | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for key, label in (("startup_cpu", "operator CPU, start → healthy + 3 s"),
                       ("churn_cpu", f"operator CPU while {count} foreign Deployments change"),
                       ("peak_rss_mb", "operator peak RSS (MB)")):
        lines.append(f"| {label} | " + " | ".join(f"{results[n][key]:.2f}" for n in names)
                     + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base", required=True, help="the revision to compare with (git)")
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--log", default="/tmp/wattserve-operator-foreign.log")
    args = p.parse_args(argv)
    if not os.environ.get("KUBECONFIG"):
        print("set KUBECONFIG (e.g. eval \"$(wattserve dev-cluster env)\")", file=sys.stderr)
        return 2
    try:
        results = asyncio.run(run(args.base, args.count, Path(args.log)))
    except (ApiError, subprocess.CalledProcessError, RuntimeError) as err:
        print(f"benchmark failed: {err}", file=sys.stderr)
        return 1
    print(table(results, args.count))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
