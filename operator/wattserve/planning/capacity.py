"""What each pool can hold (pure): node allocatable or ``maxNodes`` × node shape, and a
first-fit ledger of the replicas placed on it.

A pool's capacity is the allocatable CPU, memory and GPUs of its nodes (nodes matching the
pool's ``nodeSelector``, or labelled ``wattserve.dev/pool=<pool>`` when it has none) when
such nodes exist, else ``maxNodes`` virtual nodes of the pool's node shape. A model's
replicas are packed onto nodes first-fit, all or nothing, as the scheduler must place
every pod on one node: a pool with 8 free vCPUs spread over two nodes as 4 + 4 takes two
4-vCPU replicas but not one 8-vCPU replica.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Final

from wattserve import contract
from wattserve.api.cluster import Node, container_requests
from wattserve.api.types import ServingPool
from wattserve.planning.placement import Candidate

_EPS: Final = 1e-9
# Kubernetes' quantity grammar (apimachinery resource.Quantity): a signed decimal number
# ("5", "0.5", ".5", "5.") and a binary-SI suffix, a decimal-SI suffix or an exponent
# ("1e3", "2E-2"). Anything else (e.g. "1K": "k" is the decimal kilo) is unparsable.
_QUANTITY = re.compile(
    r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]?|[eE][+-]?[0-9]+)$")
_BINARY: Final = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50,
                  "Ei": 2**60}
_DECIMAL: Final = {"": 1.0, "n": 1e-9, "u": 1e-6, "m": 1e-3, "k": 1e3, "M": 1e6,
                   "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18}


@dataclass(frozen=True)
class Resources:
    """CPU cores, memory (GiB) and GPUs: a node's allocatable or a replica's request."""

    cpu: float = 0.0
    memory_gib: float = 0.0
    gpus: int = 0

    def __add__(self, other: Resources) -> Resources:
        return Resources(self.cpu + other.cpu, self.memory_gib + other.memory_gib,
                         self.gpus + other.gpus)

    def __sub__(self, other: Resources) -> Resources:
        return Resources(self.cpu - other.cpu, self.memory_gib - other.memory_gib,
                         self.gpus - other.gpus)

    def times(self, count: int) -> Resources:
        return Resources(self.cpu * count, self.memory_gib * count, self.gpus * count)

    def holds(self, request: Resources) -> bool:
        return (request.cpu <= self.cpu + _EPS and request.memory_gib <= self.memory_gib + _EPS
                and request.gpus <= self.gpus)


@dataclass(frozen=True)
class PoolCapacity:
    pool: str
    nodes: tuple[Resources, ...]  # allocatable of each node
    source: str  # "nodes" (counted from the cluster) or "maxNodes" (the pool's shape)
    gpu: bool = False

    @cached_property
    def total(self) -> Resources:
        """The nodes' sum, computed once per capacity (a ``maxNodes`` pool may list
        100,000 virtual nodes; every ledger and fleet assignment reads it)."""
        cpu = memory = 0.0
        gpus = 0
        for node in self.nodes:  # left to right, as ``sum(nodes, Resources())`` adds
            cpu, memory, gpus = cpu + node.cpu, memory + node.memory_gib, gpus + node.gpus
        return Resources(cpu, memory, gpus)


def replica_request(cand: Candidate, pool: ServingPool) -> Resources:
    """What one replica's pod requests (as render/workload.py writes it)."""
    gpus = max(1, cand.tensor_parallel) if pool.spec.is_gpu else 0
    return Resources(cand.cpu_millis / 1000, float(max(1, cand.memory_request_gib)),
                     gpus)


def shape_capacity(pool: ServingPool, max_nodes: int | None = None) -> PoolCapacity:
    """``maxNodes`` virtual nodes of the pool's node shape."""
    spec = pool.spec
    gpus = spec.accelerator.count if spec.accelerator is not None else 0
    node = Resources(float(spec.node.cpu), float(spec.node.memory_gib), gpus)
    count = spec.max_nodes if max_nodes is None else max_nodes
    return PoolCapacity(pool.name, (node,) * count, "maxNodes", spec.is_gpu)


def pool_capacity(pool: ServingPool,
                  nodes: Iterable[Node | Mapping[str, Any]]) -> PoolCapacity:
    """Capacity from the pool's schedulable nodes, else from ``maxNodes`` × node shape.
    ``nodes``: typed (the operator's cache), or Node bodies (typed here, once)."""
    resource = (pool.spec.accelerator.resource_name if pool.spec.accelerator is not None
                else None)
    members = [node for node in map(as_node, nodes) if node_in_pool(node, pool)]
    if not members:
        return shape_capacity(pool)
    counted = sorted((node_allocatable(node, resource) for node in members
                      if schedulable(node)), key=lambda r: (-r.gpus, -r.cpu, -r.memory_gib))
    return PoolCapacity(pool.name, tuple(counted), "nodes", pool.spec.is_gpu)


def as_node(node: Node | Mapping[str, Any]) -> Node:
    return node if isinstance(node, Node) else Node.from_body(node)


def template_request(workload: Mapping[str, Any], gpu_resource: str | None) -> Resources:
    """What one pod of a Deployment's template requests (all containers)."""
    total = Resources()
    for requests in container_requests(workload):
        gpus = int(quantity(requests.get(gpu_resource, "0"))) if gpu_resource else 0
        total = total + Resources(quantity(requests.get("cpu", "0")),
                                  quantity(requests.get("memory", "0")) / 2**30, gpus)
    return total


def node_in_pool(node: Node, pool: ServingPool) -> bool:
    wanted = dict(pool.spec.node_selector) or {contract.LABEL_K8S_POOL: pool.name}
    return all(node.labels.get(key) == value for key, value in wanted.items())


def schedulable(node: Node) -> bool:
    """Not cordoned and not reported NotReady."""
    return not node.unschedulable and not node.not_ready


def node_allocatable(node: Node, gpu_resource: str | None) -> Resources:
    alloc = node.allocatable
    gpus = int(quantity(alloc.get(gpu_resource, "0"))) if gpu_resource else 0
    return Resources(quantity(alloc.get("cpu", "0")),
                     quantity(alloc.get("memory", "0")) / 2**30, gpus)


def quantity(value: object) -> float:
    """A Kubernetes quantity ("15500m", "64Gi", "4") as a float; unparsable is 0."""
    match = _QUANTITY.match(str(value).strip())
    if match is None:
        return 0.0
    number, suffix = float(match.group(1)), match.group(2)
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    if suffix in _DECIMAL:
        return number * _DECIMAL[suffix]
    try:  # an exponent; one too large for a float is unparsable
        return number * 10.0 ** int(suffix[1:])
    except OverflowError:
        return 0.0


Allocation = list[tuple[int, Resources]]  # (node index, resources taken there)


class Ledger:
    """Free resources of each node of one pool; replicas are placed first-fit."""

    def __init__(self, capacity: PoolCapacity) -> None:
        self.capacity = capacity
        self.free = list(capacity.nodes)
        self._free_total = capacity.total  # kept in step with ``free``: a quick reject
        # Per request: no node before this index holds a copy of it. Free room only shrinks
        # between releases (a release moves the hint back), so first-fit starts there
        # instead of re-reading every full node of a 100,000-node pool for every replica.
        self._skip: dict[Resources, int] = {}

    def fits(self, request: Resources, replicas: int) -> bool:
        return self._pack(request, replicas) is not None

    def place(self, request: Resources, replicas: int) -> Allocation | None:
        """Reserve ``replicas`` × ``request`` first-fit; all or nothing."""
        packed = self._pack(request, replicas)
        if packed is None:
            return None
        self._take(packed)
        return packed

    def force(self, request: Resources, replicas: int) -> Allocation:
        """Reserve what already runs, even where it does not fit (it is there)."""
        allocation, left = self._first_fit(request, replicas)
        if left and self.free:  # over capacity: the rest is charged to the first node
            allocation.append((0, request.times(left)))
        self._take(allocation)
        return allocation

    def restore(self, allocation: Allocation) -> None:
        """Take back exactly an allocation that was released (what runs stays where it is)."""
        self._take(allocation)

    def release(self, allocation: Allocation) -> None:
        for index, amount in allocation:
            self.free[index] = self.free[index] + amount
            self._free_total = self._free_total + amount
            for request, start in self._skip.items():
                if index < start:
                    self._skip[request] = index

    def _take(self, allocation: Allocation) -> None:
        for index, amount in allocation:
            self.free[index] = self.free[index] - amount
            self._free_total = self._free_total - amount

    def _pack(self, request: Resources, replicas: int) -> Allocation | None:
        if not self._free_total.holds(request.times(replicas)):
            return None
        packed, left = self._first_fit(request, replicas)
        return packed if left == 0 else None

    def _first_fit(self, request: Resources, replicas: int) -> tuple[Allocation, int]:
        """First-fit over the nodes (read only): the allocation and the replicas left over.
        Stops at the first nodes that hold them (a pool may have 100,000)."""
        packed: Allocation = []
        left = replicas
        start = index = self._skip.get(request, 0)
        free = self.free
        while left and index < len(free):
            take = min(left, _copies(free[index], request))
            if take:
                packed.append((index, request.times(take)))
                left -= take
            elif not packed:
                start = index + 1  # holds no copy now, nor after any take
            index += 1
        self._skip[request] = start
        return packed, left

    @property
    def used(self) -> Resources:
        return self.capacity.total - self._free_total

    def usage(self) -> str:
        """"48/48 vCPU committed" (GPUs on GPU pools), memory too when it binds."""
        return usage_text(self.used, self.capacity.total, self.capacity.gpu)


def usage_text(used: Resources, total: Resources, gpu: bool) -> str:
    """"12/48 vCPU committed" (GPUs on a GPU pool), memory too when it binds."""
    text = f"{used.gpus}/{total.gpus} GPUs" if gpu else f"{used.cpu:g}/{total.cpu:g} vCPU"
    if total.memory_gib > 0 and used.memory_gib / total.memory_gib > max(
            used.cpu / total.cpu if total.cpu else 0,
            used.gpus / total.gpus if total.gpus else 0):
        text += f", {used.memory_gib:.0f}/{total.memory_gib:.0f} GiB"
    return text + " committed"


def _copies(node: Resources, request: Resources) -> int:
    """How many copies of ``request`` fit on a node with ``node`` free."""
    best = -1
    for have, need in ((node.cpu, request.cpu), (node.memory_gib, request.memory_gib),
                       (node.gpus, request.gpus)):
        if need > 0:
            ratio = have / need
            if not math.isfinite(ratio):  # a vanishing request: this resource binds nothing
                if have < 0:
                    return 0
                continue
            count = math.floor(ratio + _EPS)
            if count <= 0:
                return 0
            best = count if best < 0 else min(best, count)
        elif have < -_EPS:
            return 0
    return max(best, 0)


def ledgers(capacities: Sequence[PoolCapacity]) -> dict[str, Ledger]:
    return {cap.pool: Ledger(cap) for cap in capacities}
