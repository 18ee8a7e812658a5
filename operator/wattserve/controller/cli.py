"""`wattserve operator` / `python -m wattserve.controller`: run the kopf operator."""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import sys
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from wattserve.cli.args import OneLineParser
from wattserve.render import SettingsError

# Client libraries kopf imports when they are installed, only to recognise their object
# classes; the operator hands kopf none (its own KubeApi talks to the API server).
UNUSED_CLIENTS = ("kubernetes", "kubernetes_asyncio", "pykube")


def _without_unused_clients() -> None:
    """Keep them out of the operator's process: ``kubernetes`` alone is ≈ 40 MB resident
    (present in development environments, not in the operator image)."""
    if "kopf" not in sys.modules:
        for name in UNUSED_CLIENTS:
            sys.modules.setdefault(name, None)  # type: ignore[arg-type]  # None: not importable


SERVICE_ACCOUNT_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


def credentials_problem(env: Mapping[str, str], home: Path,
                        token: Path = SERVICE_ACCOUNT_TOKEN) -> str | None:
    """Why the operator could not log in to any API server (None: it has credentials to
    try): the order of :func:`wattserve.controller.app.make_login`. Said at start, in one
    line, instead of a traceback retried every minute."""
    raw = env.get("KUBECONFIG", "")
    if raw:
        paths = [p for p in raw.split(os.pathsep) if p]
        if not any(Path(p).is_file() for p in paths):
            return f"KUBECONFIG={raw}: no such file"
        return None
    if token.is_file():  # kopf's in-cluster login needs only the token
        return None
    if (home / ".kube" / "config").is_file():
        return None
    return ("no credentials: not in a pod with a ServiceAccount token, KUBECONFIG is unset "
            f"and {home / '.kube' / 'config'} does not exist")


def _parser(defaults: dict[str, object]) -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="wattserve operator",
        description="Reconcile ModelDeployments into serving workloads on the chosen "
                    "ServingPool (current kubeconfig, or in-cluster ServiceAccount).")
    scope = p.add_mutually_exclusive_group()
    scope.add_argument("-n", "--namespace", action="append", default=[], metavar="NS",
                       help="serve this namespace (repeatable)")
    scope.add_argument("-A", "--all-namespaces", action="store_true",
                       help="serve every namespace (the default without --namespace)")
    p.add_argument("--metrics-port", type=int, default=defaults["metrics_port"],
                   help="Prometheus /metrics port, 0 = off [WATTSERVE_METRICS_PORT, 9090]")
    p.add_argument("--health-port", type=int, default=defaults["health_port"],
                   help="liveness /healthz port, 0 = off [WATTSERVE_HEALTH_PORT, 8080]")
    p.add_argument("--resync-seconds", type=float, default=defaults["resync_seconds"],
                   help="periodic reconcile of every ModelDeployment "
                        "[WATTSERVE_RESYNC_SECONDS, 300]")
    p.add_argument("--workers", type=int, default=defaults["workers"],
                   help="concurrent reconciles [WATTSERVE_RECONCILE_WORKERS, 16]")
    p.add_argument("--rebalance-dwell-seconds", type=float, metavar="SECONDS",
                   default=defaults["rebalance_dwell_seconds"],
                   help="time a spilled model stays on a pool before it moves back to a "
                        "better one [WATTSERVE_REBALANCE_DWELL_SECONDS, 300]")
    p.add_argument("--rebalance-min-gain", type=float, metavar="SHARE",
                   default=defaults["rebalance_min_gain"],
                   help="share of its objective a move back must save "
                        "[WATTSERVE_REBALANCE_MIN_GAIN, 0.10]")
    p.add_argument("--peering", default=defaults["peering_name"], metavar="NAME",
                   help="kopf peering object name [WATTSERVE_PEERING_NAME, wattserve]")
    p.add_argument("--priority", type=int, default=defaults["priority"],
                   help="peering priority [WATTSERVE_PEERING_PRIORITY, 0]")
    p.add_argument("--standalone", action="store_true",
                   help="no peering (a single operator instance)")
    lease = defaults["leader_lease"]
    p.add_argument("--leader-election-lease", metavar="NAMESPACE/NAME",
                   default="/".join(lease) if lease else "",  # type: ignore[arg-type]
                   help="run as one of several replicas: the one holding this Lease acts, "
                        "the others wait with warm caches (kopf peering is then off) "
                        "[WATTSERVE_LEADER_ELECTION_LEASE, unset: off]")
    p.add_argument("--leader-election-lease-seconds", type=int, metavar="SECONDS",
                   default=defaults["lease_seconds"],
                   help="how long a Lease not renewed stays its holder's; renewals try "
                        "every 2/15 of it, and a leader stops acting 2/3 of it after its "
                        "last renewal [WATTSERVE_LEADER_ELECTION_LEASE_SECONDS, 15]")
    auto = defaults["autoscale"]
    p.add_argument("--prometheus-url", default=auto.prometheus_url,  # type: ignore[attr-defined]
                   metavar="URL", help="Prometheus for the autoscaler; empty = autoscaler off "
                   "[WATTSERVE_PROMETHEUS_URL]")
    p.add_argument("--autoscale-interval", type=float, metavar="SECONDS",
                   default=auto.interval_s,  # type: ignore[attr-defined]
                   help="seconds between autoscaling decisions "
                        "[WATTSERVE_AUTOSCALE_INTERVAL_SECONDS, 15]")
    p.add_argument("--promql-window", metavar="WINDOW",
                   default=auto.templates.window,  # type: ignore[attr-defined]
                   help="rate()/histogram window of the autoscaler's PromQL, e.g. 30s, 1m "
                        "[WATTSERVE_PROMQL_WINDOW, 1m]")
    p.add_argument("--scrape-interval", type=float, metavar="SECONDS",
                   default=auto.scrape_interval_s,  # type: ignore[attr-defined]
                   help="Prometheus's scrape interval: refuse a --promql-window shorter than 4 "
                        "of them [WATTSERVE_PROMETHEUS_SCRAPE_INTERVAL_SECONDS, unset: "
                        "not checked]")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p


def run(argv: list[str]) -> int:
    from wattserve.controller.autoscaling import AutoscaleSettings, check_templates
    from wattserve.controller.config import (
        OperatorConfig,
        env_defaults,
        lease_ref,
        make_identity,
        pod_identity_prefix,
    )
    from wattserve.reconcile.lease import MIN_DURATION_S, LeaseTiming

    try:
        defaults = env_defaults()
    except SettingsError as err:
        print(f"wattserve operator: {err}", file=sys.stderr)
        return 2
    args = _parser(defaults).parse_args(argv)
    for name in ("metrics_port", "health_port"):
        port = getattr(args, name)
        if not 0 <= port <= 65535:
            print(f"wattserve operator: --{name.replace('_', '-')}: must be 0..65535, "
                  f"got {port}", file=sys.stderr)
            return 2
    if not 0 <= args.rebalance_dwell_seconds < math.inf or not 0 <= args.rebalance_min_gain < 1:
        print("wattserve operator: --rebalance-dwell-seconds must be >= 0 and "
              "--rebalance-min-gain in [0, 1)", file=sys.stderr)
        return 2
    if args.scrape_interval is not None and not 0 < args.scrape_interval < math.inf:
        print("wattserve operator: --scrape-interval must be positive", file=sys.stderr)
        return 2
    if args.workers < 1 or not 0 < args.resync_seconds < math.inf or not (
            0 < args.autoscale_interval < math.inf):
        print("wattserve operator: --workers, --resync-seconds and --autoscale-interval must "
              "be positive", file=sys.stderr)
        return 2
    if args.leader_election_lease_seconds < MIN_DURATION_S:
        print(f"wattserve operator: --leader-election-lease-seconds must be >= "
              f"{MIN_DURATION_S}, got {args.leader_election_lease_seconds}", file=sys.stderr)
        return 2
    try:
        leader_lease = lease_ref(args.leader_election_lease, "--leader-election-lease")
    except SettingsError as err:
        print(f"wattserve operator: {err}", file=sys.stderr)
        return 2
    autoscale: AutoscaleSettings = defaults["autoscale"]  # type: ignore[assignment]
    try:
        autoscale = replace(
            autoscale, prometheus_url=args.prometheus_url.strip(),
            interval_s=args.autoscale_interval,
            templates=replace(autoscale.templates, window=args.promql_window),
            scrape_interval_s=args.scrape_interval)
        check_templates(autoscale.templates, autoscale.scrape_interval_s)
    except SettingsError as err:
        print(f"wattserve operator: --promql-window: {err}", file=sys.stderr)
        return 2
    config = OperatorConfig(
        namespaces=tuple(dict.fromkeys(args.namespace)),
        metrics_port=args.metrics_port,
        health_port=args.health_port,
        standalone=args.standalone,
        peering_name=args.peering,
        priority=args.priority,
        resync_seconds=args.resync_seconds,
        full_resync_seconds=float(defaults["full_resync_seconds"]),  # type: ignore[arg-type]
        pool_status_seconds=float(defaults["pool_status_seconds"]),  # type: ignore[arg-type]
        workers=args.workers,
        rebalance_dwell_seconds=args.rebalance_dwell_seconds,
        rebalance_min_gain=args.rebalance_min_gain,
        verbose=args.verbose,
        identity=make_identity(),
        pod_identity_prefix=pod_identity_prefix(),
        render=defaults["render"],  # type: ignore[arg-type]
        autoscale=autoscale,
        activator_service=defaults["activator_service"],  # type: ignore[arg-type]
        leader_lease=leader_lease,
        lease=LeaseTiming(args.leader_election_lease_seconds),
    )
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.verbose:
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
        logging.getLogger("kopf.activities.probe").setLevel(logging.WARNING)
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    problem = credentials_problem(os.environ, Path.home())
    if problem is not None:
        print(f"wattserve operator: {problem}", file=sys.stderr)
        return 2
    _without_unused_clients()
    from wattserve.controller.app import LeadershipLost, serve

    try:
        asyncio.run(serve(config))
    except KeyboardInterrupt:
        return 130
    except LeadershipLost as lost:
        print(f"wattserve operator: {lost}; exiting so that this instance restarts as a "
              "follower", file=sys.stderr)
        return 1
    return 0
