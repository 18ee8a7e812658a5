"""``python3 -m wattserve_activator``: serve the activator (port 8012) and its admin port."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable

from aiohttp import web

from wattserve import contract
from wattserve_activator.discovery import (
    KubeDiscovery,
    connection_from_kubeconfig,
    connection_in_cluster,
)
from wattserve_activator.holding import Settings
from wattserve_activator.server import Activator, make_runner


def _positive(kind: type[float] | type[int]) -> Callable[[str], float | int]:
    def parse(text: str) -> float | int:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value
    return parse


def _env_number(name: str, default: str, kind: type[float] | type[int]) -> float | int:
    raw = os.environ.get(name, default)
    try:
        value = kind(raw)
    except ValueError:
        raise ValueError(f"{name}: must be a number, got {raw!r}") from None
    if value <= 0:
        raise ValueError(f"{name}: must be > 0, got {raw}")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="wattserve-activator", description=__doc__)
    p.add_argument("--port", type=_positive(int), default=_env_number(
        "WATTSERVE_ACTIVATOR_PORT", str(contract.ACTIVATOR_PORT), int))
    p.add_argument("--admin-port", type=_positive(int), default=_env_number(
        "WATTSERVE_ACTIVATOR_ADMIN_PORT", "9091", int), help="/healthz and /metrics")
    p.add_argument("--queue-size", type=_positive(int), default=_env_number(
        "WATTSERVE_ACTIVATOR_QUEUE_SIZE", "100", int), help="held requests per model")
    p.add_argument("--deadline", type=_positive(float), default=_env_number(
        "WATTSERVE_ACTIVATOR_DEADLINE_SECONDS", "120", float),
        help="a held request's longest wait, seconds")
    p.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG", ""),
                   help="outside a cluster (default: in-cluster ServiceAccount)")
    p.add_argument("--host", default="0.0.0.0")
    return p


async def serve(args: argparse.Namespace) -> None:
    conn = (connection_from_kubeconfig(args.kubeconfig) if args.kubeconfig
            else connection_in_cluster())
    activator = Activator(KubeDiscovery(conn),
                          Settings(queue_size=args.queue_size, deadline_s=args.deadline))
    runners = []
    for app, port in ((activator.app(), args.port), (activator.admin_app(), args.admin_port)):
        runner = make_runner(app)
        await runner.setup()
        await web.TCPSite(runner, args.host, port).start()
        runners.append(runner)
    logging.info("activator on :%d (admin :%d), queue %d per model, deadline %.0fs",
                 args.port, args.admin_port, args.queue_size, args.deadline)
    # SIGTERM (pod deletion) ends the wait: as PID 1 Python has no default handler, and the
    # pod would sit out its whole grace period, then be killed with requests held.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for runner in runners:
            await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    try:
        args = parser().parse_args(argv)
    except ValueError as err:
        print(f"wattserve-activator: {err}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        asyncio.run(serve(args))
    except KeyError as err:
        print(f"wattserve-activator: not in a cluster ({err} unset): pass --kubeconfig",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
