"""Serving configuration: CLI flags over env variables (names from the operator contract)."""

from __future__ import annotations

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
        return max(1, int(limit))  # a fractional limit rounds down (min 1 thread)
    raw = env.get(contract.ENV_THREADS, "").strip()
    if raw:
        try:
            return max(1, int(raw))
        except ValueError:
            pass
    return os.cpu_count() or 1


def pod_cpus(env: Mapping[str, str] | None = None, cpu_max: Path = CGROUP_CPU_MAX,
             cpu_v1: Path = CGROUP_V1_CPU) -> float:
    """CPUs this pod may use, for the power model: cgroup limit, else threads, else node."""
    limit = container_cpu_limit(cpu_max, cpu_v1)
    if limit is not None:
        return limit
    return float(default_threads(env, cpu_max, cpu_v1))


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
        env = dict(os.environ if env is None else env)
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
        if self.threads < 1:
            return f"--threads: must be >= 1, got {self.threads}"
        if self.max_queue < 0:
            return f"--max-queue: must be >= 0, got {self.max_queue}"
        if self.parallel < 1:
            return f"--parallel: must be >= 1, got {self.parallel}"
        if self.context_length < 16:
            return f"--context-length: must be >= 16, got {self.context_length}"
        if self.engine == "llamacpp" and not Path(self.model).is_file():
            return f"--model: GGUF file not found: {self.model}"
        return None


def _int_env(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        return default


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
