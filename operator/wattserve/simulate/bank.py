"""The trace bank: real and generated traces x models x SLOs, each judged against the
hindsight oracle and the cheapest fairly tuned baseline.

An entry is (trace, model, SLO). For each: wattserve with its defaults, the oracle
(:mod:`wattserve.simulate.oracle`), HPA (CPU target 50-80 %), Ray Serve
(``target_ongoing_requests`` 0.5-8) and the hindsight-optimal static count; the row
reports wattserve's attainment and its replica-hours and kWh as ratios to the oracle and
to the cheapest baseline setting reaching 99 %. Sparse traces run with minReplicas 0
(wattserve and the oracle scale to zero; HPA, Ray and static keep one replica).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from wattserve.api import ModelDeployment, ServingPool
from wattserve.simulate.families import FAMILIES, Shape, generate
from wattserve.simulate.report import Summary
from wattserve.simulate.scenario import Scenario, load_model, load_pools, place
from wattserve.simulate.sweep import ATTAINMENT_GOAL, Run, run_policy, sweep_policy
from wattserve.simulate.trace import TraceRequest, scale_lengths
from wattserve.simulate.trace_files import read_trace, read_trace_file

RAY_BANK_TARGETS = (0.5, 1.0, 2.0, 4.0, 8.0)
REAL_TRACES = ("azure", "mooncake")


@dataclass(frozen=True)
class BankModel:
    key: str
    file: str  # examples/models/<file>
    max_replicas: int
    ttft: bool  # the SLO has a TTFT p95 too
    shape: Shape  # token lengths of the generated families
    fit_real: tuple[float, float] | None = None  # rescale real traces' length means


MODELS = (
    BankModel("smollm2-cpu", "smollm2-135m.yaml", 40, True,
              Shape(64, 64, max_tokens=2048), fit_real=(64, 64)),
    BankModel("llama8b-l4", "llama-3.1-8b-low-load.yaml", 24, False,
              Shape(512, 192, max_tokens=8192)),
    BankModel("llama70b-h100", "llama-3.1-70b-bf16.yaml", 16, True,
              Shape(1024, 192, max_tokens=8192)),
)
# Two SLOs per (trace, model): a tight and a loose multiple of what an idle replica does
# at the trace's 99th percentile (latency and TTFT), rounded up to 0.5 s. A fixed SLO
# would be out of reach on some traces for every policy (long outputs on an L4).
SLO_FACTORS = (1.5, 3.0)


@dataclass(frozen=True)
class Entry:
    trace: str  # "azure", "mooncake" or a family
    model: BankModel
    slo: float  # factor over the idle-replica p99 (SLO_FACTORS)
    seed: int = 1
    hours: float = 1.0  # generated families (long: x3, sparse: x6); real traces: cut
    time_unit: str | None = None  # of a held-out file's numeric times (None: the reader's)
    shown: str = ""  # a held-out file's name in the tables (its path's tail, told apart)

    @property
    def from_file(self) -> bool:
        """A trace file given by path (a held-out trace), not a bank name."""
        return self.trace not in REAL_TRACES and self.trace not in FAMILIES

    @property
    def label(self) -> str:
        if self.from_file:
            name = self.shown or Path(self.trace).name
            return f"{name} {self.model.key} SLO x{self.slo:g}"
        seed = "" if self.trace in REAL_TRACES else f"#{self.seed}"
        return f"{self.trace}{seed} {self.model.key} SLO x{self.slo:g}"


def entries(*, seeds: Sequence[int] = (1,), hours: float = 1.0,
            traces: Sequence[str] | None = None, models: Sequence[str] | None = None,
            time_unit: str | None = None) -> list[Entry]:
    """The bank's entries; ``traces`` may name files to hold out, replayed for their first
    ``hours`` (``time_unit``: of their numeric times, when the reader cannot tell)."""
    names = [_trace_name(t, hours, time_unit) for t in traces] if traces \
        else [*REAL_TRACES, *FAMILIES]
    shown = _shown_names([n for n in names if n not in REAL_TRACES and n not in FAMILIES])
    out: list[Entry] = []
    for m in MODELS:
        if models and m.key not in models:
            continue
        for name in names:
            for slo in SLO_FACTORS:
                for seed in ((1,) if name not in FAMILIES else seeds):
                    out.append(Entry(name, m, slo, seed, hours, time_unit,
                                     shown.get(name, "")))
    return out


def _shown_names(paths: Sequence[str]) -> dict[str, str]:
    """Each file's shortest path tail that no other file given ends with."""
    out: dict[str, str] = {}
    for path in paths:
        parts = Path(path).parts
        others = [Path(o).parts for o in paths if o != path]
        k = 1
        while k < len(parts) and any(o[-k:] == parts[-k:] for o in others):
            k += 1
        out[path] = str(Path(*parts[-k:]))
    return out


def _limit_s(entry: Entry) -> float | None:
    """Seconds replayed of a trace file: a held-out file's first ``hours``, the bank's
    real traces (1 h) cut only by a shorter ``hours``."""
    if entry.from_file:
        return entry.hours * 3600.0
    return entry.hours * 3600.0 if entry.hours < 1.0 else None


def _trace_name(name: str, hours: float = 1.0, time_unit: str | None = None) -> str:
    """A bank trace name, or a trace file's absolute path (checked to exist)."""
    if name in REAL_TRACES or name in FAMILIES:
        return name
    path = Path(name).expanduser()
    if not path.is_file():
        raise ValueError(f"trace {name!r}: neither a bank trace ({', '.join(REAL_TRACES)}, "
                         f"{', '.join(FAMILIES)}) nor a file")
    # Read now, with the runs' cut, so a file the runs would refuse is refused before any
    # of them starts.
    try:
        held_out = read_trace_file(path, limit_s=hours * 3600.0, time_unit=time_unit,
                                   span_hint="keep a part (--hours)").requests
    except ValueError as exc:
        raise ValueError(f"trace {name}: {' '.join(str(exc).split())}") from None
    except OSError as exc:
        raise ValueError(f"trace {name}: {exc.strerror or exc}") from None
    if not held_out:
        raise ValueError(f"trace {name}: no requests in the file")
    return str(path.resolve())


def unit_rate(md: ModelDeployment, perf: Any, shape: Shape, slo_s: float,
              ttft_s: float | None) -> float:
    """Requests/s one replica serves at the model's target utilization within the SLO
    (the placement engine's operating point), for the family's mean lengths."""
    from wattserve.planning import ReplicaPerformance, operating_point
    from wattserve.planning.economics import Targets

    targets = Targets(slo_s, ttft_s, md.spec.scaling.target_utilization_percent / 100.0)
    if not isinstance(perf, ReplicaPerformance):
        return 1.0
    prompt, gen = round(shape.prompt_mean), round(shape.gen_mean)
    lo, hi = 0.0, 1000.0
    for _ in range(40):
        mid = (lo + hi) / 2
        if targets.met_by(operating_point(perf, mid, prompt, gen)):
            lo = mid
        else:
            hi = mid
    return max(lo, 1e-3)


def _real_trace(entry: Entry, root: Path) -> list[TraceRequest]:
    m = entry.model
    limit = _limit_s(entry)
    if entry.trace == "azure":
        trace = read_trace(_find(root, "AzureLLMInferenceTrace_conv.csv"), limit_s=limit)
        return scale_lengths(trace, *m.fit_real) if m.fit_real else trace
    if entry.trace == "mooncake":
        trace = read_trace(_find(root, "mooncake_conversation.csv"), limit_s=limit)
        if m.fit_real:  # a small model: keep the shape, 4x the model's prompt mean
            return scale_lengths(trace, 4 * m.fit_real[0], m.fit_real[1])
        return trace
    trace = read_trace(entry.trace, limit_s=_limit_s(entry), time_unit=entry.time_unit)
    if m.fit_real and trace:  # a small model: its lengths, longer prompts kept longer
        mean_prompt = sum(r.prompt_tokens for r in trace) / len(trace)
        return scale_lengths(trace, m.fit_real[0] * min(4.0, max(1.0, mean_prompt / 1024)),
                             m.fit_real[1])
    return trace


def _generated(entry: Entry, unit: float) -> list[TraceRequest]:
    hours = entry.hours * {"long": 3.0, "sparse": 6.0}.get(entry.trace, 1.0)
    return generate(entry.trace, seed=entry.seed, unit_rate=unit, shape=entry.model.shape,
                    hours=hours)


def idle_p99(trace: Sequence[TraceRequest], perf: Any) -> tuple[float, float]:
    """99th percentile latency and TTFT of the trace's requests on an idle replica."""
    lat = sorted(r.prompt_tokens / perf.prefill_tps + r.gen_tokens / perf.decode_tps_single
                 for r in trace)
    ttft = sorted(r.prompt_tokens / perf.prefill_tps for r in trace)
    k = min(len(lat) - 1, int(0.99 * len(lat))) if lat else 0
    return (lat[k], ttft[k]) if lat else (1.0, 1.0)


def _round_up(x: float, step: float = 0.5) -> float:
    return max(step, step * math.ceil(x / step - 1e-9))


def _find(root: Path, name: str) -> Path:
    for p in (root / "benchmarks" / "traces" / name, root.parent / "shared" / "traces" / name):
        if p.exists():
            return p
    raise FileNotFoundError(f"trace {name} not found under {root}/benchmarks/traces")


def scenario(entry: Entry, root: Path, pools: Sequence[ServingPool] | None = None
             ) -> Scenario:
    md = load_model(root / "examples" / "models" / entry.model.file)
    pools = pools if pools is not None else load_pools(root / "examples" / "pools.yaml")
    _pool, perf = place(md, pools)  # the pool does not depend on the SLO set below
    real = entry.trace not in FAMILIES
    trace = _real_trace(entry, root) if real else _generated(entry, 1.0)
    lat99, ttft99 = idle_p99(trace, perf)
    slo_s = _round_up(entry.slo * lat99)
    ttft_s = _round_up(entry.slo * ttft99) if entry.model.ttft else None
    spec = md.spec
    slo = replace(spec.slo, latency_p95_ms=round(slo_s * 1000),
                  ttft_p95_ms=None if ttft_s is None else round(ttft_s * 1000))
    scaling = replace(spec.scaling, max_replicas=entry.model.max_replicas,
                      min_replicas=0 if entry.trace == "sparse" else 1)
    md = replace(md, spec=replace(spec, slo=slo, scaling=scaling))
    pool, perf = place(md, pools)
    if not real:
        trace = _generated(entry, unit_rate(md, perf, entry.model.shape, slo_s, ttft_s))
    return Scenario(md, perf, pool, trace)


@dataclass(frozen=True)
class Outcome:
    entry: str
    trace: str
    model: str
    seed: int
    slo_s: float
    ttft_slo_s: float | None
    requests: int
    wattserve: Summary
    oracle: Summary
    cheapest: Summary | None  # cheapest baseline setting reaching 99 %
    seconds: float

    def ratio(self, field: str, other: Summary | None) -> float | None:
        if other is None:
            return None
        den = float(getattr(other, field))
        return float(getattr(self.wattserve, field)) / den if den > 0 else None

    @property
    def met(self) -> bool:
        """Targets: >= 99 % attainment, <= 1.2x the oracle's replica-h and kWh, and not
        above the cheapest passing baseline."""
        ws = self.wattserve
        ok = ws.slo_attainment >= ATTAINMENT_GOAL
        for f in ("replica_hours", "kwh"):
            r_o = self.ratio(f, self.oracle)
            r_c = self.ratio(f, self.cheapest)
            ok = ok and (r_o is None or r_o <= 1.2 + 1e-9) and (r_c is None or r_c <= 1.0 + 1e-9)
        return ok


def run_entry(entry: Entry, root: Path, *, idle_timeout_s: float | None = None,
              baselines: bool = True) -> Outcome:
    t0 = time.monotonic()
    scn = scenario(entry, root)
    if idle_timeout_s is not None:
        scn = replace(scn, idle_timeout_s=idle_timeout_s)
    ws = run_policy(scn, "wattserve").summary
    orc = run_policy(scn, "oracle").summary
    cheapest: Run | None = None
    if baselines:
        found: list[Run] = []
        for name in ("hpa", "static"):
            _runs, best = sweep_policy(scn, name)
            if best is not None:
                found.append(best)
        for target in RAY_BANK_TARGETS:
            run = run_policy(scn, "rayserve", target)
            if run.summary.slo_attainment >= ATTAINMENT_GOAL:
                found.append(run)
        cheapest = min(found, key=lambda r: (r.summary.replica_hours, r.summary.kwh),
                       default=None)
    return Outcome(entry.label, entry.trace, entry.model.key, entry.seed, scn.slo_s,
                   scn.ttft_slo_s, len(scn.trace), ws, orc, cheapest.summary if cheapest else None,
                   time.monotonic() - t0)


def run_bank(items: Sequence[Entry], root: Path, *, jobs: int = 1,
             idle_timeout_s: float | None = None,
             progress: Callable[[str], None] | None = None) -> list[Outcome]:
    say = progress or (lambda _m: None)
    out: list[Outcome] = []
    if jobs <= 1:
        for i, e in enumerate(items, 1):
            out.append(run_entry(e, root, idle_timeout_s=idle_timeout_s))
            say(_progress(i, len(items), out[-1]))
        return out
    from concurrent.futures import ProcessPoolExecutor, as_completed

    with ProcessPoolExecutor(max_workers=jobs) as pool:
        futs = {pool.submit(run_entry, e, root, idle_timeout_s=idle_timeout_s): i
                for i, e in enumerate(items)}
        done: dict[int, Outcome] = {}
        for fut in as_completed(futs):
            done[futs[fut]] = fut.result()
            say(_progress(len(done), len(items), done[futs[fut]]))
    return [done[i] for i in range(len(items))]


def _progress(i: int, n: int, o: Outcome) -> str:
    r = o.ratio("replica_hours", o.oracle)
    return (f"[{i}/{n}] {o.entry}: wattserve {o.wattserve.slo_attainment:.2%}, "
            f"{'n/a' if r is None else f'{r:.2f}x'} oracle replica-h ({o.seconds:.0f}s)")


def _x(v: float | None) -> str:
    return "–" if v is None else f"{v:.2f}×"


def bank_table(outcomes: Sequence[Outcome]) -> str:
    """One markdown table: attainment and ratios to the oracle and the cheapest baseline."""
    head = ("| entry | SLO p95 / TTFT | req | wattserve att. | oracle att. | rh / oracle | "
            "kWh / oracle | cheapest baseline ≥ 99 % | rh / it | kWh / it | "
            "cold starts (held, max hold) "
            "| targets |")
    lines = [head, "|" + "---|" * 12]
    for o in outcomes:
        c = o.cheapest
        ws = o.wattserve
        zero = (f"{ws.cold_starts} ({ws.held_requests}, {ws.hold_max_s:.0f}s)"
                if ws.cold_starts or ws.held_requests else "–")
        lines.append(
            f"| {o.entry} | {o.slo_s:g} s / "
            f"{'–' if o.ttft_slo_s is None else f'{o.ttft_slo_s:g} s'} | {o.requests} | "
            f"{ws.slo_attainment:.2%} | "
            f"{o.oracle.slo_attainment:.2%} | {_x(o.ratio('replica_hours', o.oracle))} | "
            f"{_x(o.ratio('kwh', o.oracle))} | "
            f"{'none' if c is None else f'{c.policy} {c.setting}'} | "
            f"{_x(o.ratio('replica_hours', c))} | {_x(o.ratio('kwh', c))} | {zero} | "
            f"{'met' if o.met else '**missed**'} |")
    return "\n".join(lines)


def _median(v: list[float]) -> float:
    return v[len(v) // 2] if v else float("nan")


def bank_summary(outcomes: Sequence[Outcome]) -> str:
    n = len(outcomes)
    if not n:
        return "no entries"
    att = sum(o.wattserve.slo_attainment >= ATTAINMENT_GOAL for o in outcomes)
    rh = sorted(r for o in outcomes if (r := o.ratio("replica_hours", o.oracle)) is not None)
    kwh = sorted(r for o in outcomes if (r := o.ratio("kwh", o.oracle)) is not None)
    over = sum(1 for o in outcomes if (r := o.ratio("replica_hours", o.cheapest)) is not None
               and r > 1.0 + 1e-9)
    return (f"{sum(o.met for o in outcomes)}/{n} entries meet every target; attainment "
            f">= 99 % on {att}/{n}; replica-h vs oracle median {_median(rh):.2f}x, max "
            f"{max(rh, default=float('nan')):.2f}x; kWh vs oracle median {_median(kwh):.2f}x, "
            f"max {max(kwh, default=float('nan')):.2f}x; above the cheapest passing "
            f"baseline on {over}/{n}.")
