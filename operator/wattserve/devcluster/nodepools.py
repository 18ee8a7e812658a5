"""Simulated node pools: read the pools file and turn it into kwok-managed Node objects.

Conventions the operator and the examples rely on (do not change lightly):

* every node: label ``wattserve.dev/pool=<pool>``, taint ``wattserve.dev/pool=<pool>:NoSchedule``;
* GPU nodes: label ``nvidia.com/gpu.product=<product>``,
  taint ``nvidia.com/gpu=present:NoSchedule``, capacity ``nvidia.com/gpu: <count>``;
* all: label ``type=kwok`` and annotation ``kwok.x-k8s.io/node=fake`` (kwok manages them).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wattserve.api import SpecError, parse_documents, read_manifest
from wattserve.api.parse import MAX_ACCELERATOR_COUNT
from wattserve.planning.capacity import quantity

DEFAULT_POOLS_FILE = Path(__file__).resolve().parent / "nodepools.yaml"
POOL_LABEL = "wattserve.dev/pool"
GPU_RESOURCE = "nvidia.com/gpu"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
KWOK_ANNOTATION = "kwok.x-k8s.io/node"
_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,40}[a-z0-9])?$")


class PoolConfigError(ValueError):
    """The pools file is unreadable or wrong; the message names the file and the field."""


@dataclass(frozen=True)
class Pool:
    name: str
    count: int
    capacity: dict[str, str]
    gpu_count: int = 0
    gpu_product: str | None = None
    labels: dict[str, str] = field(default_factory=dict)

    def node_names(self) -> list[str]:
        return [f"{self.name}-{i}" for i in range(self.count)]


def _require(cond: bool, where: str, message: str) -> None:
    if not cond:
        raise PoolConfigError(f"{where}: {message}")


def _parse_pool(raw: Any, where: str) -> Pool:
    _require(isinstance(raw, dict), where, "each pool must be a mapping")
    name = raw.get("name")
    _require(
        isinstance(name, str) and bool(_NAME_RE.match(name)),
        f"{where}.name",
        f"must be a DNS label (lowercase, digits, '-'), got {name!r}",
    )
    count = raw.get("count", 1)
    _require(
        isinstance(count, int) and not isinstance(count, bool) and 0 <= count <= 1000,
        f"{where}.count",
        f"must be an integer 0..1000, got {count!r}",
    )
    capacity = raw.get("capacity", {})
    _require(isinstance(capacity, dict), f"{where}.capacity", "must be a mapping")
    for key in ("cpu", "memory"):
        _require(key in capacity, f"{where}.capacity", f"missing {key!r}")
    cap = {str(k): str(v) for k, v in capacity.items()}
    for key, value in capacity.items():
        _require(_positive_quantity(str(value)), f"{where}.capacity.{key}",
                 f"must be a positive Kubernetes quantity such as '16', '500m' or '64Gi', "
                 f"got {value!r}")
    cap.setdefault("pods", "110")
    gpu = raw.get("gpu")
    gpu_count, gpu_product = 0, None
    if gpu is not None:
        _require(isinstance(gpu, dict), f"{where}.gpu", "must be a mapping {count, product}")
        gpu_count = gpu.get("count")
        _require(
            isinstance(gpu_count, int) and not isinstance(gpu_count, bool)
            and 0 < gpu_count <= MAX_ACCELERATOR_COUNT,
            f"{where}.gpu.count",
            f"must be an integer 1..{MAX_ACCELERATOR_COUNT} (GPUs of one node), got {gpu_count!r}",
        )
        gpu_product = gpu.get("product")
        _require(
            isinstance(gpu_product, str) and bool(gpu_product),
            f"{where}.gpu.product",
            "must be a non-empty string such as NVIDIA-L4",
        )
        cap[GPU_RESOURCE] = str(gpu_count)
    labels = raw.get("labels", {}) or {}
    _require(isinstance(labels, dict), f"{where}.labels", "must be a mapping")
    unknown = set(raw) - {"name", "count", "capacity", "gpu", "labels"}
    _require(not unknown, where, f"unknown key(s): {', '.join(sorted(unknown))}")
    return Pool(
        name, count, cap, gpu_count, gpu_product, {str(k): str(v) for k, v in labels.items()}
    )


def _positive_quantity(text: str) -> bool:
    """A quantity the API server takes for a node's capacity: parseable, > 0 and finite."""
    amount = quantity(text)  # unparsable (a sign, a word) is 0
    return amount > 0 and math.isfinite(amount)


def load_pools(path: Path | None = None) -> list[Pool]:
    """Parse and validate a pools file (default: the shipped ``nodepools.yaml``); every
    problem is a one-line PoolConfigError naming the file and the field."""
    path = path or DEFAULT_POOLS_FILE
    try:
        docs = parse_documents(read_manifest(path), str(path))
    except OSError as exc:
        raise PoolConfigError(f"{path}: cannot read pools file ({exc.strerror})") from exc
    except SpecError as exc:
        raise PoolConfigError(str(exc)) from None
    raws = docs[0].get("pools") if len(docs) == 1 and isinstance(docs[0], dict) else None
    if not isinstance(raws, list):
        raise PoolConfigError(f"{path}: expected a mapping with a 'pools' list")
    pools = [_parse_pool(raw, f"{path}: pools[{i}]") for i, raw in enumerate(raws)]
    names = [p.name for p in pools]
    dupes = sorted({n for n in names if names.count(n) > 1})
    _require(not dupes, str(path), f"duplicate pool name(s): {', '.join(dupes)}")
    return pools


def node_manifest(pool: Pool, node_name: str) -> dict[str, Any]:
    labels = {
        "type": "kwok",
        "kubernetes.io/hostname": node_name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/role": "agent",
        POOL_LABEL: pool.name,
        **pool.labels,
    }
    taints = [{"key": POOL_LABEL, "value": pool.name, "effect": "NoSchedule"}]
    if pool.gpu_product:
        labels[GPU_PRODUCT_LABEL] = pool.gpu_product
        labels["nvidia.com/gpu.count"] = str(pool.gpu_count)
        taints.append({"key": GPU_RESOURCE, "value": "present", "effect": "NoSchedule"})
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": node_name,
            "labels": labels,
            "annotations": {KWOK_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": {"taints": taints},
        "status": {"capacity": dict(pool.capacity), "allocatable": dict(pool.capacity)},
    }


def nodes_manifest(pools: list[Pool]) -> dict[str, Any]:
    """One ``v1/List`` with every node, ready for ``kubectl apply -f``."""
    items = [node_manifest(p, n) for p in pools for n in p.node_names()]
    return {"apiVersion": "v1", "kind": "List", "items": items}
