"""Serving configuration: CLI flags over env variables (names from the operator contract)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from wattserve import contract

ENGINES: tuple[str, ...] = ("llamacpp", "vllm")
# What the model is served for (the ModelDeployment's spec.model.task): chat and completion
# generate text; embedding answers /v1/embeddings only.
TASKS: tuple[str, ...] = ("chat", "completion", "embedding")
SERVERS: tuple[str, ...] = ("uvicorn", "ray")
DEFAULT_MAX_QUEUE = 16
DEFAULT_CONTEXT_LENGTH = 2048
# The ModelDeployment's spec.model.contextLength bound (wattserve.api.parse.MAX_TOKENS), which
# the operator passes on as WATTSERVE_CONTEXT_LENGTH; llama.cpp's n_ctx is a uint32.
MAX_CONTEXT_LENGTH = 10_000_000
# vLLM's tensor parallel size: a node's GPUs (a ServingPool's accelerator.count bound).
MAX_GPU_COUNT = 64
MAX_THREADS = 512  # GGML_MAX_N_THREADS (ggml.h): more aborts llama.cpp at the first request
# Integer and number variables the serving process reads: a value that is set is a number.
INT_ENV: tuple[str, ...] = (contract.ENV_PORT, contract.ENV_THREADS, contract.ENV_MAX_QUEUE,
                            contract.ENV_PARALLEL, contract.ENV_CONTEXT_LENGTH,
                            contract.ENV_GPU_COUNT)
# The power model's node figures (energy.py); 0 W idle is a pool's real figure.
NUMBER_ENV: tuple[str, ...] = (contract.ENV_NODE_CPUS, contract.ENV_NODE_IDLE_WATTS,
                               contract.ENV_NODE_MAX_WATTS)
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")
CGROUP_V1_CPU = Path("/sys/fs/cgroup/cpu")  # cgroup v1: cpu.cfs_quota_us, cpu.cfs_period_us


def cgroup_cpu_limit(path: Path = CGROUP_CPU_MAX) -> float | None:
    """CPU limit from cgroup v2 `cpu.max` ("<quota> <period>" or "max <period>"), or None."""
    try:
        quota, period = path.read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    try:
        limit = int(quota) / int(period)
    except (ValueError, ZeroDivisionError):
        return None
    return limit if limit > 0 else None


def cgroup_v1_cpu_limit(directory: Path = CGROUP_V1_CPU) -> float | None:
    """CPU limit from cgroup v1 CFS quota/period (quota -1 = none), or None."""
    try:
        quota = int((directory / "cpu.cfs_quota_us").read_text().strip())
        period = int((directory / "cpu.cfs_period_us").read_text().strip())
    except (OSError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None


def container_cpu_limit(cpu_max: Path = CGROUP_CPU_MAX,
                        cpu_v1: Path = CGROUP_V1_CPU) -> float | None:
    """The container's CPU limit (cgroup v2, else v1), or None when it has none."""
    limit = cgroup_cpu_limit(cpu_max)
    return limit if limit is not None else cgroup_v1_cpu_limit(cpu_v1)


def default_threads(env: Mapping[str, str] | None = None, cpu_max: Path = CGROUP_CPU_MAX,
                    cpu_v1: Path = CGROUP_V1_CPU) -> int:
    """llama.cpp threads: the pod's CPU limit, else WATTSERVE_THREADS, else os.cpu_count()."""
    env = os.environ if env is None else env
    limit = container_cpu_limit(cpu_max, cpu_v1)
    if limit is not None:
        return min(MAX_THREADS, max(1, int(limit)))  # a fractional limit rounds down
    raw = env.get(contract.ENV_THREADS, "").strip()
    if raw:
        try:
            return min(MAX_THREADS, max(1, int(raw)))
        except ValueError:
            pass
    return min(MAX_THREADS, os.cpu_count() or 1)


def pod_cpus(env: Mapping[str, str] | None = None, cpu_max: Path = CGROUP_CPU_MAX,
             cpu_v1: Path = CGROUP_V1_CPU) -> float:
    """CPUs this pod may use, for the power model: cgroup limit, else threads, else node."""
    limit = container_cpu_limit(cpu_max, cpu_v1)
    if limit is not None:
        return limit
    return float(default_threads(env, cpu_max, cpu_v1))


class EnvError(ValueError):
    """A WATTSERVE_* variable set to what is not its kind of value; names the variable."""


def check_env(env: Mapping[str, str]) -> None:
    """Raise EnvError for the first numeric WATTSERVE_* variable set to a non-number (an
    integer one to a non-integer, a node figure to a negative or non-finite number)."""
    for name in INT_ENV:
        _int_env(env, name, 0)
    for name in NUMBER_ENV:
        raw = env.get(name, "").strip()
        if not raw:
            continue
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value >= 0):
            raise EnvError(f"{name}: must be a number >= 0, got {_short(raw)}")


@dataclass
class ServeConfig:
    """Everything the app needs; `from_env` fills it from the operator's env variables."""

    model: str = ""
    model_name: str = ""
    engine: str = "llamacpp"
    task: str = "chat"
    host: str = "127.0.0.1"
    port: int = contract.SERVING_PORT
    server: str = "uvicorn"
    threads: int = 1
    max_queue: int = DEFAULT_MAX_QUEUE
    parallel: int = 1  # llama.cpp: requests interleaved first-token-fairly
    context_length: int = DEFAULT_CONTEXT_LENGTH
    gpu_count: int = 1
    pool: str = ""
    namespace: str = ""
    model_deployment: str = "local"
    energy_interval_s: float = 1.0
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def served_model_name(self) -> str:
        """The OpenAI `model` id: explicit name, else the model file's stem / hf id."""
        if self.model_name:
            return self.model_name
        if self.model.endswith(".gguf"):
            return Path(self.model).stem
        return self.model

    def labels(self) -> dict[str, str]:
        return {
            contract.LABEL_MODEL: self.served_model_name,
            contract.LABEL_ENGINE: self.engine,
            contract.LABEL_POOL: self.pool,
            contract.LABEL_NAMESPACE: self.namespace,
            contract.LABEL_MODEL_DEPLOYMENT: self.model_deployment,
        }

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> ServeConfig:
        """Raises EnvError naming a numeric variable that is set to a non-number."""
        env = dict(os.environ if env is None else env)
        check_env(env)
        return cls(
            model=env.get(contract.ENV_MODEL_PATH, ""),
            model_name=env.get(contract.ENV_MODEL_NAME, ""),
            engine=env.get(contract.ENV_ENGINE, "llamacpp") or "llamacpp",
            task=env.get(contract.ENV_TASK, "chat") or "chat",
            port=_int_env(env, contract.ENV_PORT, contract.SERVING_PORT),
            threads=default_threads(env),
            max_queue=_int_env(env, contract.ENV_MAX_QUEUE, DEFAULT_MAX_QUEUE),
            parallel=_int_env(env, contract.ENV_PARALLEL, 1),
            context_length=_int_env(env, contract.ENV_CONTEXT_LENGTH, DEFAULT_CONTEXT_LENGTH),
            gpu_count=_int_env(env, contract.ENV_GPU_COUNT, 1),
            pool=env.get(contract.ENV_POOL, ""),
            namespace=env.get(contract.ENV_NAMESPACE, ""),
            model_deployment=env.get(contract.ENV_MODEL_DEPLOYMENT, "local") or "local",
        )

    def validate(self) -> str | None:
        """The first problem as "--flag: reason", or None when the config is usable."""
        if not self.model:
            return f"--model: required (or set {contract.ENV_MODEL_PATH})"
        if self.engine not in ENGINES:
            return f"--engine: must be one of {', '.join(ENGINES)}, got {self.engine!r}"
        if self.task not in TASKS:
            return f"--task: must be one of {', '.join(TASKS)}, got {self.task!r}"
        if self.server not in SERVERS:
            return f"--server: must be one of {', '.join(SERVERS)}, got {self.server!r}"
        if not 0 < self.port < 65536:
            return f"--port: must be 1..65535, got {self.port}"
        if not 1 <= self.threads <= MAX_THREADS:
            return f"--threads: must be 1..{MAX_THREADS} (ggml's limit), got {self.threads}"
        if self.max_queue < 0:
            return f"--max-queue: must be >= 0, got {self.max_queue}"
        if self.parallel < 1:
            return f"--parallel: must be >= 1, got {self.parallel}"
        if not 16 <= self.context_length <= MAX_CONTEXT_LENGTH:
            return (f"--context-length: must be 16..{MAX_CONTEXT_LENGTH}, "
                    f"got {self.context_length}")
        if not 1 <= self.gpu_count <= MAX_GPU_COUNT:
            return f"--gpu-count: must be 1..{MAX_GPU_COUNT}, got {self.gpu_count}"
        if self.engine == "llamacpp" and not Path(self.model).is_file():
            return f"--model: GGUF file not found: {self.model}"
        return None


def _int_env(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:  # a word, a fraction, more digits than int() converts
        raise EnvError(f"{name}: must be an integer, got {_short(raw)}") from None


def _short(raw: str, limit: int = 40) -> str:
    return repr(raw) if len(raw) <= limit else repr(raw[:limit]) + "..."


# ServeConfig.extra: the process age (s) at which the CLI had imported the server.
SERVER_IMPORTED_AT = "server_imported_at"


def process_age_s() -> float:
    """Seconds since this process started (Linux /proc; -1 where unknown)."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return uptime - ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return -1.0
