"""`wattserve-serve` / `wattserve serve`: run the OpenAI-compatible app.

Flags default from the operator's WATTSERVE_* env (see wattserve.contract).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import NoReturn

from wattserve import contract
from wattserve_serving.config import (
    ENGINES,
    SERVER_IMPORTED_AT,
    SERVERS,
    TASKS,
    EnvError,
    ServeConfig,
    process_age_s,
)
from wattserve_serving.engines import Engine, make_engine
from wattserve_serving.engines.base import LoadsEarly
from wattserve_serving.model_files import resolve_model

PROG = "wattserve-serve"
# Serving-only knob: "0" puts Ray Serve's HTTP proxy in front of the replica instead.
ENV_RAY_DIRECT_INGRESS = "WATTSERVE_RAY_DIRECT_INGRESS"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line naming the flag (argparse's messages start with "argument --flag").
        print(f"{PROG}: error: {message.removeprefix('argument ')}", file=sys.stderr)
        raise SystemExit(2)


def parser(defaults: ServeConfig) -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="OpenAI-compatible LLM serving (wattserve data path).")
    p.add_argument("--model", default=defaults.model,
                   help=f"GGUF path, hf id (vllm), or 'smollm2' [{contract.ENV_MODEL_PATH}]")
    p.add_argument("--model-name", default=defaults.model_name,
                   help=f"served model id [{contract.ENV_MODEL_NAME}; default: file stem]")
    p.add_argument("--engine", default=defaults.engine, choices=ENGINES,
                   help=f"[{contract.ENV_ENGINE}]")
    p.add_argument("--task", default=defaults.task, choices=TASKS,
                   help="chat and completion generate text; embedding serves /v1/embeddings "
                        f"[{contract.ENV_TASK}]")
    p.add_argument("--server", default="uvicorn", choices=SERVERS)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=defaults.port, help=f"[{contract.ENV_PORT}]")
    p.add_argument("--threads", type=int, default=defaults.threads,
                   help=f"llama.cpp threads [cgroup cpu.max, {contract.ENV_THREADS}, cpu count]")
    p.add_argument("--max-queue", type=int, default=defaults.max_queue,
                   help=f"requests allowed to wait; beyond: 429 [{contract.ENV_MAX_QUEUE}]")
    p.add_argument("--parallel", type=int, default=defaults.parallel,
                   help="llama.cpp: requests served at once, first token first (1: in turn; "
                        f"admitted: parallel + max-queue) [{contract.ENV_PARALLEL}]")
    p.add_argument("--context-length", type=int, default=defaults.context_length,
                   help=f"[{contract.ENV_CONTEXT_LENGTH}]")
    p.add_argument("--gpu-count", type=int, default=defaults.gpu_count,
                   help=f"vLLM tensor parallel size [{contract.ENV_GPU_COUNT}]")
    p.add_argument("--log-level", default="info",
                   choices=["debug", "info", "warning", "error"])
    return p


def parse(argv: list[str]) -> ServeConfig:
    try:
        cfg = ServeConfig.from_env()
    except EnvError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    ns = parser(cfg).parse_args(argv)
    cfg.model = resolve_model(ns.model)
    cfg.model_name = ns.model_name
    cfg.engine, cfg.server, cfg.host, cfg.port = ns.engine, ns.server, ns.host, ns.port
    cfg.task = ns.task
    cfg.threads, cfg.max_queue, cfg.parallel = ns.threads, ns.max_queue, ns.parallel
    cfg.context_length, cfg.gpu_count = ns.context_length, ns.gpu_count
    cfg.extra["log_level"] = ns.log_level
    problem = cfg.validate()
    if problem is not None:
        print(f"{PROG}: error: {problem}", file=sys.stderr)
        raise SystemExit(2)
    return cfg


def run(argv: list[str]) -> int:
    try:
        cfg = parse(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    level = cfg.extra.get("log_level", "info")
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    if cfg.server == "ray":
        return _run_ray(cfg)
    return _run_uvicorn(cfg, level)


def _engine_loading(cfg: ServeConfig) -> Engine:
    """The engine, its load begun where it can begin before the app (llama.cpp)."""
    engine = make_engine(cfg)
    if isinstance(engine, LoadsEarly):
        engine.begin_load()
    return engine


def _run_uvicorn(cfg: ServeConfig, level: str) -> int:
    from wattserve_serving.auth import KeyConfigError, load_keys

    try:  # before the model's load begins: a quiet load points stderr at /dev/null (below)
        keys = load_keys()
    except KeyConfigError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    # The engine (numpy, llama_cpp) is imported and its model begins to load on a thread of
    # its own while this one imports the web stack: a replica woken from zero answers its
    # held requests that much sooner (docs/benchmarks-activator.md).
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="engine-import") as early:
        engine_future = early.submit(_engine_loading, cfg)
        from wattserve_serving.app import create_app
        from wattserve_serving.server import DrainingServer, uvicorn_config

        engine = engine_future.result()
    # Logged once the model is loaded (openai_api.py): llama-cpp-python points stdout and
    # stderr at /dev/null while it loads a model quietly, so a line written now may vanish.
    cfg.extra[SERVER_IMPORTED_AT] = f"{process_age_s():.3f}"
    app = create_app(cfg, engine=engine, wait_for_model=False, keys=keys)
    config = uvicorn_config(
        app, cfg.host, cfg.port,
        log_level="warning" if level == "info" else level,
        timeout_graceful_shutdown=contract.SERVING_DRAIN_SECONDS,
    )
    DrainingServer(config, app.state.api.begin_drain).run()
    return 0


def _run_ray(cfg: ServeConfig) -> int:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Ray's documented low-overhead mode: user code on the replica's main loop, gRPC
    # proxy->replica, buffered access logs. Must be set before Ray starts its processes.
    os.environ.setdefault("RAY_SERVE_THROUGHPUT_OPTIMIZED", "1")
    # Fewer background wake-ups (idle Ray CPU ~10% -> ~6% of a core, measured): one
    # replica per pod needs neither a 100 ms control loop nor 10 Hz metrics pushes.
    os.environ.setdefault("RAY_SERVE_CONTROL_LOOP_INTERVAL_S", "0.5")
    os.environ.setdefault("RAY_SERVE_METRICS_EXPORT_INTERVAL_MS", "1000")
    # On SIGTERM the replica has drained already (_drain_then_shut_down) and the pod's
    # preStop delay let its endpoint go: Ray's own 30 s minimum drain of the proxy and of a
    # direct-ingress replica would only outlast the pod's grace period.
    os.environ.setdefault("RAY_SERVE_PROXY_MIN_DRAINING_PERIOD_S", "1")
    os.environ.setdefault("RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S", "1")
    proxy_port = cfg.port
    if os.environ.get(ENV_RAY_DIRECT_INGRESS, "1") == "1":
        # Direct ingress: the replica itself listens on --port (no proxy hop per token);
        # Serve's proxy moves to a free loopback port, unused by clients.
        os.environ["RAY_SERVE_ENABLE_DIRECT_INGRESS"] = "1"
        os.environ["RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT"] = str(cfg.port)
        os.environ["RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT"] = str(cfg.port + 1)
        proxy_port = _free_port(cfg.host)
    import ray
    from ray import serve

    from wattserve_serving.ray_app import DEPLOYMENT_NAME, build_app

    args = {
        "model": cfg.model, "model_name": cfg.model_name, "engine": cfg.engine,
        "task": cfg.task,
        "threads": cfg.threads, "max_queue": cfg.max_queue,
        "context_length": cfg.context_length, "gpu_count": cfg.gpu_count,
    }
    stop = threading.Event()
    ray.init(include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    # After ray.init: Ray's core installs a handler that ends the driver on SIGTERM at once
    # (the pod's main process: the container, and every stream in it, went with it).
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    log = logging.getLogger(PROG)
    try:
        serve.start(http_options={"host": cfg.host, "port": proxy_port})
        serve.run(build_app(args), name=DEPLOYMENT_NAME, route_prefix="/", blocking=False)
        log.info("Ray Serve app ready on http://%s:%d", cfg.host, cfg.port)
        stop.wait()
        asyncio.run(_drain_then_shut_down(DEPLOYMENT_NAME, log))
    finally:
        serve.shutdown()  # type: ignore[no-untyped-call]  # nothing left after the drain
        ray.shutdown()
    return 0


async def _drain_then_shut_down(name: str, log: logging.Logger) -> None:
    """What uvicorn's server does on SIGTERM, through the deployment's handle: running
    requests finish (contract.SERVING_DRAIN_SECONDS), new and queued ones get a 503; then
    Serve shuts down on the same loop (RAY_SERVE_THROUGHPUT_OPTIMIZED runs a handle's router
    on its caller's loop, which must still run when the handle is shut down)."""
    from ray import serve

    budget = contract.SERVING_DRAIN_SECONDS
    try:
        handle = serve.get_deployment_handle(name, app_name=name)
        left = int(await asyncio.wait_for(handle.drain.remote(budget), budget + 5))
    except Exception as exc:  # the drain is best effort: shut down regardless
        log.warning("drain failed (%s: %s); shutting down", type(exc).__name__, exc)
    else:
        if left:
            log.warning("%d requests still running after the %ss drain", left, budget)
    await serve.shutdown_async()  # type: ignore[no-untyped-call]


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def main() -> None:
    raise SystemExit(run(sys.argv[1:]))


if __name__ == "__main__":
    main()
