"""A serving process started from nothing (a replica woken from zero) loads its model while
it imports its web stack, and that stack is the light one.

Real parts: the `wattserve-serve` CLI as its own process, the real SmolLM2 GGUF, the real
llama.cpp engine, the real `openai` client. Why it matters: the activator holds a woken
model's requests until this process answers /health (docs/benchmarks-activator.md).
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import threading
from pathlib import Path
from unittest import mock

import pytest

from wattserve.devcluster.processes import free_port
from wattserve_serving.engines.llamacpp import LlamaCppEngine
from wattserve_serving.engines.llamacpp_embed import LlamaCppEmbedder

from serving_helpers import smollm2_path, wait_for_health

START_TIMEOUT_S = 120.0


def test_the_uvicorn_server_imports_no_fastapi() -> None:
    """FastAPI (needed only by Ray Serve's ingress) cost ~0.3 s of imports per cold start."""
    code = ("import sys, uvicorn, wattserve_serving.cli, wattserve_serving.app, "
            "wattserve_serving.server; print('fastapi' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize("kind", [LlamaCppEngine, LlamaCppEmbedder])
def test_a_load_begun_off_the_loop_is_the_load_the_server_awaits(kind: type) -> None:
    path = str(smollm2_path())
    engine = (LlamaCppEngine(path, threads=1, context_length=256) if kind is LlamaCppEngine
              else LlamaCppEmbedder(path, threads=1, context_length=256))
    real = engine._load_sync
    calls: list[str] = []

    def counted() -> None:
        calls.append(threading.current_thread().name)
        real()

    with mock.patch.object(engine, "_load_sync", counted):
        assert engine.load_began is None
        engine.begin_load()  # no event loop in this thread
        began = engine.load_began
        assert began is not None
        engine.begin_load()  # idempotent
        asyncio.run(engine.load())
        asyncio.run(engine.load())  # a loaded engine: nothing more to do
    assert engine.ready()
    assert engine.load_began == began
    assert len(calls) == 1 and calls[0].startswith("llamacpp"), calls
    asyncio.run(engine.close())


def test_the_cli_loads_the_model_while_it_imports_its_server(tmp_path: Path) -> None:
    """The real CLI as a process: the model's load began before the server's imports ended,
    it loaded once, and the process answers a chat completion through the `openai` client."""
    import openai

    port = free_port()
    log = tmp_path / "serve.log"
    env = {**os.environ, "WATTSERVE_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    with log.open("w") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-c", "from wattserve_serving.cli import main; main()",
             "--model", str(smollm2_path()), "--model-name", "smol", "--port", str(port)],
            env=env, stdout=sink, stderr=subprocess.STDOUT)
    try:
        wait_for_health(proc, f"http://127.0.0.1:{port}", log, START_TIMEOUT_S)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none",
                               max_retries=0, timeout=60)
        reply = client.chat.completions.create(
            model="smol", max_tokens=4, messages=[{"role": "user", "content": "Say hello."}])
        assert reply.choices[0].message.content
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    text = log.read_text()
    imported = re.findall(r"server imported at process up ([\d.]+)s; "
                          r"the model began loading at process up ([\d.]+)s", text)
    loaded = re.findall(r"model smol loaded \(llamacpp\) in ([\d.]+)s; process up ([\d.]+)s",
                        text)
    assert len(imported) == 1 and len(loaded) == 1, text[-2000:]
    server_at, load_at = (float(x) for x in imported[0])
    assert load_at < server_at, text[-2000:]  # the load ran beside the server's imports


def test_a_bad_key_file_is_one_line_on_stderr_and_exit_2_before_any_model_load(
        tmp_path: Path) -> None:
    """The model's quiet load points stderr at /dev/null while it runs, so the key check
    comes first: its error must reach the pod's log."""
    missing = tmp_path / "no-such-keys"
    proc = subprocess.run(
        [sys.executable, "-c", "from wattserve_serving.cli import main; main()",
         "--model", str(smollm2_path()), "--port", str(free_port())],
        env={**os.environ, "WATTSERVE_API_KEY_FILE": str(missing)},
        capture_output=True, text=True, timeout=START_TIMEOUT_S)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert lines == [f"wattserve-serve: error: WATTSERVE_API_KEY_FILE: cannot read {missing}: "
                     "No such file or directory"], proc.stderr[-2000:]
    assert " loaded (" not in proc.stderr
