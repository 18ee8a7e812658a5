"""``wattserve dev-cluster``: build, start, inspect and stop the local control plane."""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
from pathlib import Path
from typing import Any

import yaml

from wattserve.devcluster import build, components, control_plane, realnode
from wattserve.devcluster.nodepools import PoolConfigError, load_pools
from wattserve.devcluster.state import default_state_dir


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad input as one line and exit 2 (no usage dump, no traceback)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise _UsageError(message)


class _UsageError(Exception):
    pass


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="wattserve dev-cluster",
        description="Local Kubernetes control plane (etcd, kube-apiserver, "
        "controller-manager, scheduler) with kwok-simulated CPU/GPU pools.",
    )
    p.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="state directory (default $WATTSERVE_STATE or ~/.local/state/wattserve/dev-cluster)",
    )
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    b = sub.add_parser("build", help="build the binaries from Go modules (cached by version)")
    b.add_argument("--force", action="store_true", help="rebuild even if cached")
    b.add_argument(
        "--only",
        action="append",
        choices=sorted(components.COMPONENT_BY_NAME),
        help="build only this component (repeatable)",
    )
    u = sub.add_parser("up", help="start the cluster (builds missing binaries first)")
    u.add_argument("--pools", type=Path, default=None, help="node pools YAML file")
    u.add_argument("--no-build", action="store_true", help="fail instead of building binaries")
    u.add_argument(
        "--no-real-node",
        action="store_true",
        help="run the kwok pools only (no containerd/kubelet node; one real node per machine)",
    )
    u.add_argument(
        "--no-images",
        action="store_true",
        help="do not build/import the operator and serving images onto the real node",
    )
    sub.add_parser("down", help="stop every component and remove the state directory")
    s = sub.add_parser("status", help="components, ports, nodes")
    s.add_argument("-o", "--output", choices=["table", "json", "yaml"], default="table")
    sub.add_parser("kubeconfig", help="print the admin kubeconfig path")
    sub.add_parser("env", help="print shell exports (KUBECONFIG, PATH)")
    return p


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    lines = [
        "  ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=False)).rstrip()
        for r in [header, *rows]
    ]
    return "\n".join(lines)


def _print_status(info: dict[str, Any]) -> None:
    if not info["components"]:
        print(f"dev cluster: not running (state dir {info['state_dir']})")
        return
    state = "running" if info["running"] else "NOT healthy"
    print(f"dev cluster: {state}  {info['server']}  Kubernetes {info['kubernetes_version']}")
    print(f"kubeconfig:  {info['kubeconfig']}")
    node = info.get("real_node")
    print(f"real node:   {node['node']} (started in {node.get('start_s', '?')}s)" if node
          else "real node:   none (kwok pools only)")
    print()
    rows = [
        [
            c["name"],
            str(c["pid"]),
            "yes" if c["alive"] else "NO",
            str(c["port"]),
            f"{c['rss_mib']:.0f}",
        ]
        for c in info["components"]
    ]
    print(_table(rows, ["COMPONENT", "PID", "ALIVE", "PORT", "RSS_MIB"]))
    if info["nodes"]:
        print()
        rows = [
            [n["name"], n["pool"], "Ready" if n["ready"] else "NotReady", n["gpus"]]
            for n in info["nodes"]
        ]
        print(_table(rows, ["NODE", "POOL", "STATUS", "GPUS"]))


def _env_lines(state_dir: Path) -> list[str]:
    bin_dirs = sorted({str(p.parent) for p in components.binary_paths().values()})
    return [
        f"export KUBECONFIG={state_dir / 'kubeconfig'}",
        f"export PATH={':'.join(bin_dirs)}:$PATH",
    ]


def _dispatch(args: argparse.Namespace) -> int:
    state_dir: Path = args.state_dir or default_state_dir()
    if args.command == "build":
        build.build_all(only=args.only, force=args.force)
        return 0
    if args.command == "up":
        load_pools(args.pools)  # bad pools file -> exit 2 before anything is built or started
        wanted = components.missing_binaries()
        if not args.no_real_node and not args.no_build and realnode.host_reason() is None:
            wanted += components.missing_binaries(node=True)
        if wanted:
            if args.no_build:
                print(
                    "dev-cluster: binaries missing; run `wattserve dev-cluster build`",
                    file=sys.stderr,
                )
                return 1
            build.build_all()
        st = control_plane.up(
            state_dir,
            args.pools,
            echo=print,
            real_node=not args.no_real_node,
            node_images=not args.no_images,
        )
        print(f"dev cluster up: https://127.0.0.1:{st.api_port}")
        for line in _env_lines(state_dir):
            print(line)
        return 0
    if args.command == "down":
        stopped = control_plane.down(state_dir)
        print("dev cluster stopped" if stopped else "dev cluster was not running")
        return 0
    if args.command == "status":
        info = control_plane.status(state_dir)
        if args.output == "json":
            print(json.dumps(info, indent=2))
        elif args.output == "yaml":
            print(yaml.safe_dump(info, sort_keys=False), end="")
        else:
            _print_status(info)
        return 0 if info["running"] else 1
    if args.command == "kubeconfig":
        print(state_dir / "kubeconfig")
        return 0 if (state_dir / "kubeconfig").exists() else 1
    for line in _env_lines(state_dir):
        print(line)
    return 0


def _terminate(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def run(argv: list[str]) -> int:
    try:
        args = _parser().parse_args(argv)
    except _UsageError as exc:
        print(f"dev-cluster: {exc}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    if args.command == "up" and args.pools is not None and not args.pools.is_file():
        print(f"dev-cluster: --pools {args.pools}: no such file", file=sys.stderr)
        return 2
    # A SIGTERM (CI timeout, Ctrl-C in a wrapper) unwinds like an exception, so a half-started
    # cluster is stopped instead of leaking processes.
    previous = None
    with contextlib.suppress(ValueError):  # not in the main thread: leave signals alone
        previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return _dispatch(args)
    except PoolConfigError as exc:
        print(f"dev-cluster: {exc}", file=sys.stderr)
        return 2
    except (control_plane.ClusterError, build.BuildError) as exc:
        print(f"dev-cluster: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # unwritable state/cache dir, missing file, ...
        print(f"dev-cluster: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("dev-cluster: interrupted", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run(sys.argv[1:]))
