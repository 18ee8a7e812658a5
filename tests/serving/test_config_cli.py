"""Config from env, cgroup CPU limits, and CLI argument errors."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from wattserve import contract
from wattserve_serving import cli
from wattserve_serving.admission import AdmissionGate, QueueFull
from wattserve_serving.config import (
    MAX_CONTEXT_LENGTH,
    MAX_GPU_COUNT,
    EnvError,
    ServeConfig,
    cgroup_cpu_limit,
    default_threads,
)
from wattserve_serving.engines.stops import StopMatcher


def test_cgroup_cpu_limit(tmp_path: Path) -> None:
    f = tmp_path / "cpu.max"
    f.write_text("250000 100000\n")
    assert cgroup_cpu_limit(f) == 2.5
    assert default_threads({contract.ENV_THREADS: "7"}, f) == 2
    f.write_text("max 100000\n")
    assert cgroup_cpu_limit(f) is None
    assert default_threads({contract.ENV_THREADS: "7"}, f) == 7
    assert default_threads({contract.ENV_THREADS: "99999999"}, f) == 512  # ggml's most
    assert cgroup_cpu_limit(tmp_path / "missing") is None


def test_config_from_env() -> None:
    env = {contract.ENV_MODEL_PATH: "/m/x.gguf", contract.ENV_POOL: "cpu-a",
           contract.ENV_NAMESPACE: "ns", contract.ENV_MODEL_DEPLOYMENT: "md",
           contract.ENV_MAX_QUEUE: "3", contract.ENV_PORT: "9000"}
    cfg = ServeConfig.from_env(env)
    assert (cfg.model, cfg.max_queue, cfg.port) == ("/m/x.gguf", 3, 9000)
    assert cfg.served_model_name == "x"
    assert cfg.labels() == {"model": "x", "engine": "llamacpp", "pool": "cpu-a",
                            "namespace": "ns", "model_deployment": "md"}
    assert ServeConfig.from_env({}).model_deployment == "local"
    assert (ServeConfig.from_env({}).task, ServeConfig.from_env(
        {contract.ENV_TASK: "embedding"}).task) == ("chat", "embedding")


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--port", "abc"], "--port"),
        (["--engine", "tgi"], "--engine"),
        (["--server", "gunicorn"], "--server"),
        (["--threads", "0"], "--threads"),
        (["--threads", "99999999999999"], "--threads: must be 1..512"),  # aborted llama.cpp
        (["--max-queue", "-1"], "--max-queue"),
        (["--port", "70000"], "--port"),
        (["--bogus"], "--bogus"),
        (["--model", "/does/not/exist.gguf"], "--model"),
        (["--task", "rerank"], "--task"),
        (["--gpu-count", "0"], "--gpu-count: must be 1..64, got 0"),
        (["--context-length", "9" * 20], "--context-length: must be 16..10000000"),
    ],
)
def test_cli_bad_args_one_line_exit_2(
    argv: list[str], flag: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    full = ["--model", str(model), *argv] if argv[0] != "--model" else argv
    assert cli.run(full) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert flag in err


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        (contract.ENV_PORT, "abc", "must be an integer, got 'abc'"),
        (contract.ENV_MAX_QUEUE, "1.5", "must be an integer, got '1.5'"),
        (contract.ENV_PARALLEL, "two", "must be an integer"),
        (contract.ENV_CONTEXT_LENGTH, "9" * 5000, "must be an integer, got '99999"),
        (contract.ENV_GPU_COUNT, "x", "must be an integer"),
        (contract.ENV_THREADS, "all", "must be an integer"),
        (contract.ENV_NODE_CPUS, "sixteen", "must be a number >= 0, got 'sixteen'"),
        (contract.ENV_NODE_IDLE_WATTS, "-3", "must be a number >= 0"),
        (contract.ENV_NODE_MAX_WATTS, "nan", "must be a number >= 0"),
    ],
)
def test_a_numeric_env_variable_set_to_a_non_number_is_refused_by_name(
    name: str, value: str, message: str, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    monkeypatch.setenv(name, value)
    with pytest.raises(EnvError, match=f"^{name}: {re.escape(message)}"):
        ServeConfig.from_env()
    assert cli.run(["--model", str(model)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"wattserve-serve: error: {name}: {message}")


def test_env_that_the_operator_renders_is_accepted() -> None:
    cfg = ServeConfig.from_env({contract.ENV_PORT: " 8000 ", contract.ENV_GPU_COUNT: "2",
                                contract.ENV_NODE_IDLE_WATTS: "0",
                                contract.ENV_NODE_MAX_WATTS: "350.5",
                                contract.ENV_NODE_CPUS: "48"})
    assert (cfg.port, cfg.gpu_count) == (8000, 2)


def test_the_context_length_bound_is_the_model_deployments() -> None:
    api = pytest.importorskip("wattserve.api.parse")  # the serving wheel alone lacks it
    assert MAX_CONTEXT_LENGTH == api.MAX_TOKENS  # a contextLength the API takes, serving takes
    assert MAX_GPU_COUNT == api.MAX_ACCELERATOR_COUNT


def test_cli_missing_model(capsys: pytest.CaptureFixture[str],
                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(contract.ENV_MODEL_PATH, raising=False)
    assert cli.run([]) == 2
    assert "--model" in capsys.readouterr().err


def test_stop_matcher_holds_back_prefixes() -> None:
    m = StopMatcher(("</s>", "END"))
    assert m.feed("hello <") == ("hello ", False)
    assert m.feed("/") == ("", False)
    assert m.feed("x") == ("</x", False)
    assert m.feed(" E") == (" ", False)
    assert m.feed("NDtail") == ("", True)
    assert StopMatcher(()).feed("abc") == ("abc", False)


def test_admission_gate_counts() -> None:
    async def scenario() -> None:
        seen: list[tuple[int, int]] = []
        gate = AdmissionGate(1, 1, lambda r, q: seen.append((r, q)))
        t1, t2 = gate.reserve(), gate.reserve()
        with pytest.raises(QueueFull):
            gate.reserve()
        async with t1:
            assert (gate.running, gate.queued) == (1, 1)
            waiter = asyncio.create_task(t2.__aenter__())
            await asyncio.sleep(0)
            assert not waiter.done()
        await waiter
        assert (gate.running, gate.queued) == (1, 0)
        await t2.__aexit__(None, None, None)
        t3 = gate.reserve()
        t3.abandon()
        t3.abandon()
        assert (gate.running, gate.queued) == (0, 0)
        assert seen[-1] == (0, 0)

    asyncio.run(scenario())
