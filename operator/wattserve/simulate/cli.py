"""``wattserve simulate``: replay a request trace through an autoscaling policy.

Examples::

    wattserve simulate --trace benchmarks/traces/AzureLLMInferenceTrace_conv.csv \\
        --model examples/models/llama-3.1-70b-bf16.yaml --pools examples/pools.yaml \\
        --policy wattserve,rayserve --sweep --plot out.png
    wattserve simulate --generate hours=3,rate=3,seed=7 --model ... --pools ... -o json
    wattserve simulate --generate family=sparse,unit=1,hours=6 --min-replicas 0 \
        --idle-timeout 300 --model ... --pools ...

Every run is reported beside the hindsight oracle (``--policy oracle``; the fewest
replicas per minute that meet the SLO knowing the future), unless ``--no-oracle``.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from typing import Any

from wattserve.api import ModelDeployment
from wattserve.api.manifests import dump_yaml
from wattserve.autoscale.idle import IdleDecision
from wattserve.cli.args import OneLineParser
from wattserve.simulate.engine import MAX_REPLICAS
from wattserve.simulate.report import Summary, table
from wattserve.simulate.scenario import Scenario, load_model, load_pools, place
from wattserve.simulate.sweep import (
    ATTAINMENT_GOAL,
    POLICIES,
    Run,
    run_policy,
    sweep_policy,
    with_overrides,
)
from wattserve.simulate.trace import (
    ContextFit,
    TraceRequest,
    fit_context,
    generate_bursty,
    scale_lengths,
)
from wattserve.simulate.trace_files import TIME_UNITS, TraceFile, read_trace_file


def _parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="wattserve simulate", description=__doc__.split("\n")[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--trace", help="trace file: CSV/TSV, JSON lines or a JSON array with "
                     "an arrival time, prompt and output tokens per request (Azure 2023/2024, "
                     "Mooncake, BurstGPT and other common column names)")
    src.add_argument("--generate", metavar="K=V,...",
                     help="seeded bursty trace: hours, rate, seed, prompt, gen, burst; or a "
                        "bank family: family=steady|diurnal|onoff|flash|heavy|long|sparse, "
                        "unit (req/s), seed, hours, prompt, gen")
    p.add_argument("--model", required=True, help="ModelDeployment YAML or JSON (- for stdin)")
    p.add_argument("--pools", required=True,
                   help="ServingPool YAML or JSON, one or more documents (- for stdin)")
    p.add_argument("--policy", default="wattserve",
                   help=f"one or more of {','.join(POLICIES)} (comma-separated) or 'all'")
    p.add_argument("--sweep", action="store_true",
                   help="tune each baseline's target; report the cheapest setting at >= 99%% "
                        "SLO attainment")
    p.add_argument("--setting", type=float, default=None,
                   help="baseline setting: HPA target (0-1), Ray target_ongoing_requests, "
                        f"static replicas (1-{MAX_REPLICAS})")
    p.add_argument("--rate-scale", type=float, default=None,
                   help="multiply the request rate (--trace)")
    p.add_argument("--trace-hours", type=float, default=None,
                   help="replay only the trace's first hours (after --rate-scale)")
    p.add_argument("--time-unit", choices=tuple(TIME_UNITS), default=None,
                   help="unit of numeric arrival times (default: from the column name, "
                        "else seconds; epochs in ms/us/ns are recognised)")
    p.add_argument("--length-scale", type=float, default=None,
                   help="multiply token lengths (--trace)")
    p.add_argument("--fit-lengths", action="store_true",
                   help="rescale token lengths to the ModelDeployment's expectedLoad means")
    p.add_argument("--max-replicas", type=int, default=None, help="override maxReplicas")
    p.add_argument("--slo-ms", type=int, default=None, help="override the p95 latency SLO")
    p.add_argument("--min-replicas", type=int, default=None,
                   help="override minReplicas (0: scale to zero; requests wait for a cold "
                        "start)")
    p.add_argument("--idle-timeout", type=float, default=None,
                   help="seconds without requests before scaling to zero (minReplicas 0; "
                        "default: the operator's choice, from the cost of a wake and the "
                        "model's idle gaps)")
    p.add_argument("--no-oracle", action="store_true",
                   help="do not compute the hindsight oracle beside the runs")
    p.add_argument("-o", "--output", choices=("table", "json", "yaml"), default="table")
    p.add_argument("--plot", metavar="FILE",
                   help="write a load / replicas / latency plot (format from the extension: "
                        ".png, .svg, .pdf, ...; .png if none)")
    return p


_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _generate(spec: str) -> list[TraceRequest]:
    kv: dict[str, float] = {}
    family = None
    parts = [part.strip() for part in spec.split(",")]
    if not any(parts):
        raise ValueError("--generate: empty; give K=V pairs, e.g. hours=1,rate=2")
    for part in parts:
        key, eq, value = (x.strip() for x in part.partition("="))
        if not key or not eq:
            raise ValueError(f"--generate {part!r}: expected K=V")
        if key in kv or (key == "family" and family is not None):
            raise ValueError(f"--generate {key}: given twice")
        if key == "family":
            family = value
            continue
        if not _NUMBER.fullmatch(value):  # float() would take "1_0", "inf" and other digits
            raise ValueError(f"--generate {key}: not a number: {value!r}")
        kv[key] = float(value)
    seed = kv.get("seed", 1)
    if not (math.isfinite(seed) and abs(seed) < 2**63 and seed == int(seed)):
        raise ValueError(f"--generate seed must be a finite integer, got {seed}")
    if family is not None:
        from wattserve.simulate.families import Shape, generate

        known_f = {"unit", "seed", "hours", "prompt", "gen"}
        if set(kv) - known_f:
            raise ValueError(f"unknown --generate keys {sorted(set(kv) - known_f)}; "
                             f"use {sorted(known_f | {'family'})}")
        return generate(family, seed=int(seed), unit_rate=kv.get("unit", 1.0),
                        shape=Shape(kv.get("prompt", 256.0), kv.get("gen", 128.0)),
                        hours=kv.get("hours", 1.0))
    known = {"hours", "rate", "seed", "prompt", "gen", "burst"}
    if set(kv) - known:
        raise ValueError(f"unknown --generate keys {sorted(set(kv) - known)}; use {sorted(known)}")
    return generate_bursty(seed=int(seed), hours=kv.get("hours", 1.0),
                           mean_rate=kv.get("rate", 2.0), prompt_mean=kv.get("prompt", 256.0),
                           gen_mean=kv.get("gen", 128.0), burst_factor=kv.get("burst", 2.5))


def run(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    names = list(POLICIES) if args.policy == "all" else args.policy.split(",")
    bad = [n for n in names if n not in POLICIES]
    if bad:
        print(f"wattserve simulate: unknown policy {bad}; use {','.join(POLICIES)}",
              file=sys.stderr)
        return 2
    problem = _check_flags(args, names)
    if problem is not None:
        print(f"wattserve simulate: {problem}", file=sys.stderr)
        return 2
    try:
        try:
            md = load_model(args.model)
        except OSError as exc:
            raise ValueError(f"--model {args.model}: {exc.strerror or exc}") from None
        most = md.spec.scaling.max_replicas if args.max_replicas is None else args.max_replicas
        least = md.spec.scaling.min_replicas if args.min_replicas is None else args.min_replicas
        if least > most:
            raise ValueError(f"--min-replicas ({least}) must be <= --max-replicas ({most})")
        if args.idle_timeout is not None and least > 0:  # it would be ignored
            raise ValueError(f"--idle-timeout applies to scale to zero, and the model keeps "
                             f"{least} replicas (add --min-replicas 0)")
        try:
            pools = load_pools(args.pools)
        except OSError as exc:
            raise ValueError(f"--pools {args.pools}: {exc.strerror or exc}") from None
        pool, perf = place(md, pools)
        read: TraceFile | None = None
        if args.trace is not None:
            if not args.trace:
                raise ValueError("--trace: empty path")
            try:
                read = read_trace_file(args.trace,
                                   rate_scale=1.0 if args.rate_scale is None else args.rate_scale,
                                   length_scale=1.0 if args.length_scale is None
                                   else args.length_scale, time_unit=args.time_unit,
                                   limit_s=None if args.trace_hours is None
                                   else args.trace_hours * 3600.0)
            except ValueError as exc:
                raise ValueError(f"--trace {args.trace}: {exc}") from None
            except OSError as exc:  # missing, a directory, unreadable: name the flag
                raise ValueError(f"--trace {args.trace}: {exc.strerror or exc}") from None
            trace = read.requests
            if not trace:
                raise ValueError(f"--trace {args.trace}: no requests in the file")
            if (note := read.note()) is not None:
                print(f"wattserve simulate: --trace {args.trace}: {note}", file=sys.stderr)
        else:
            trace = _generate(args.generate)
            if not trace:
                raise ValueError(f"--generate {args.generate}: the trace has no requests "
                                 "(raise hours or rate)")
        if args.fit_lengths:
            load = md.spec.expected_load
            trace = scale_lengths(trace, load.prompt_tokens, load.output_tokens)
        fit = fit_context(trace, md.spec.model.context_length)
        if not fit.trace:
            raise ValueError(f"every request's prompt fills the model's contextLength "
                             f"({md.spec.model.context_length} tokens): a server refuses "
                             "them all")
        if fit.refused or fit.cut:
            print(f"wattserve simulate: {_context_note(fit, len(trace), md)}",
                  file=sys.stderr)
        trace = fit.trace
    except (OSError, ValueError, KeyError, ArithmeticError, RecursionError) as exc:
        print(f"wattserve simulate: {' '.join(str(exc).split()) or type(exc).__name__}",
              file=sys.stderr)
        return 2
    scn = with_overrides(Scenario(md, perf, pool, trace, idle_timeout_s=args.idle_timeout),
                         max_replicas=args.max_replicas, latency_p95_ms=args.slo_ms,
                         min_replicas=args.min_replicas)
    # Progress on stderr (stdout stays the table or document) when the run is long.
    span_h = scn.trace[-1].arrival_s / 3600.0 if scn.trace else 0.0
    long_run = args.sweep or len(scn.trace) >= LONG_RUN_REQUESTS or span_h >= 2.0
    say = (lambda msg: print(msg, file=sys.stderr, flush=True)) if long_run else None
    rows: list[Summary] = []
    best: dict[str, Summary | None] = {}
    shown: list[Run] = []
    for name in names:
        if args.sweep:
            runs, chosen = sweep_policy(scn, name, say)
            rows.extend(r.summary for r in runs)
            best[name] = chosen.summary if chosen else None
            shown.append(chosen or min(runs, key=lambda r: -r.summary.slo_attainment))
        else:
            if say:
                say(f"  {name}: replaying {len(scn.trace)} requests ({span_h:.1f} h)")
            r = run_policy(scn, name, args.setting if name != "wattserve" else None,
                           progress=say)
            rows.append(r.summary)
            shown.append(r)
    oracle = next((r for r in rows if r.policy == "oracle"), None)
    if oracle is None and not args.no_oracle:
        if say:
            say("  oracle: computing the hindsight oracle")
        oracle = run_policy(scn, "oracle", progress=say).summary
    idle = next((r.idle for r in shown if r.idle is not None), None)
    _emit(args.output, scn, pool, rows, best if args.sweep else None, oracle, idle, fit, read)
    if args.plot is not None:
        from wattserve.simulate.plot import plot_runs

        try:
            path = plot_runs([r.result for r in shown], scn.slo_s, args.plot,
                             title=f"{md.name} on {pool}", ttft_slo_s=scn.ttft_slo_s)
        except OSError as exc:  # checked before the run; the disk may still say no
            print(f"wattserve simulate: --plot {args.plot}: {exc.strerror or exc}",
                  file=sys.stderr)
            return 2
        print(f"plot: {path}", file=sys.stderr)
    return 0


LONG_RUN_REQUESTS = 20_000


def _context_note(fit: ContextFit, total: int, md: ModelDeployment) -> str:
    ctx = md.spec.model.context_length
    parts = []
    if fit.refused:
        parts.append(f"{fit.refused} of {total} requests have prompts that fill the "
                     f"model's contextLength ({ctx} tokens); a server refuses them (400), "
                     "so they are left out of the replay")
    if fit.cut:
        parts.append(f"{fit.cut} outputs are cut where the context ends")
    return "; ".join(parts)


def _check_flags(args: argparse.Namespace, names: list[str]) -> str | None:
    """The first flag out of bounds or that cannot apply, as one line; None when all are
    usable."""
    if args.model == "-" and args.pools == "-":
        return "stdin (-) can be read once: give --model or --pools a file"
    for flag, value in (("--rate-scale", args.rate_scale), ("--length-scale", args.length_scale)):
        if value is not None and not (math.isfinite(value) and 0 < value <= 1e6):
            return f"{flag} must be > 0 and <= 1e6, got {value}"
    if args.trace_hours is not None and not (math.isfinite(args.trace_hours)
                                             and 0 < args.trace_hours <= 744):
        return f"--trace-hours must be > 0 and <= 744, got {args.trace_hours}"
    if args.generate is not None:
        for flag, value in (("--trace-hours", args.trace_hours),
                            ("--rate-scale", args.rate_scale),
                            ("--length-scale", args.length_scale),
                            ("--time-unit", args.time_unit)):
            if value is not None:
                return (f"{flag} applies to a --trace file, not to --generate (set the "
                        "generator's hours, rate, prompt and gen instead)")
    if args.setting is not None:
        problem = _check_setting(args.setting, names, args.sweep)
        if problem is not None:
            return problem
    if args.max_replicas is not None and not 1 <= args.max_replicas <= MAX_REPLICAS:
        return f"--max-replicas must be 1..{MAX_REPLICAS}, got {args.max_replicas}"
    if args.min_replicas is not None and not 0 <= args.min_replicas <= MAX_REPLICAS:
        return f"--min-replicas must be 0..{MAX_REPLICAS}, got {args.min_replicas}"
    if args.slo_ms is not None and not 1 <= args.slo_ms <= 86_400_000:
        return f"--slo-ms must be 1..86400000, got {args.slo_ms}"
    if args.idle_timeout is not None and not (math.isfinite(args.idle_timeout)
                                              and 30 <= args.idle_timeout <= 604_800):
        # spec.scaling.idleTimeoutSeconds' bounds in the CRD
        return f"--idle-timeout must be 30..604800 seconds, got {args.idle_timeout}"
    if args.plot is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            return "--plot needs matplotlib (pip install 'wattserve[sim]')"
        from wattserve.simulate.plot import plot_path

        try:
            plot_path(args.plot)
        except ValueError as exc:
            return f"--plot {args.plot}: {exc}"
    return None


def _check_setting(setting: float, names: list[str], sweep: bool) -> str | None:
    """``--setting`` against each policy it goes to (see :func:`sweep.make_policy`)."""
    if sweep:
        return "--setting cannot apply with --sweep: the sweep tries each baseline's settings"
    takers = [n for n in names if n in ("hpa", "rayserve", "static")]
    if not takers:
        return (f"--setting applies to hpa, rayserve or static; --policy {','.join(names)} "
                "takes none")
    if not (math.isfinite(setting) and 0 < setting <= 1e6):
        return f"--setting must be > 0 and <= 1e6, got {setting}"
    if "hpa" in takers and not setting <= 1:
        return (f"--setting for --policy hpa is the CPU utilization target, > 0 and <= 1 "
                f"(0.7: 70%), got {setting:g}")
    if "static" in takers and not (setting == int(setting) and setting <= MAX_REPLICAS):
        return (f"--setting for --policy static is a whole number of replicas, "
                f"1..{MAX_REPLICAS} (the simulator's most), got {setting:g}")
    return None


def _ratios(rows: list[Summary], oracle: Summary) -> dict[str, dict[str, float | None]]:
    def r(a: float, b: float) -> float | None:
        return a / b if b > 0 else None
    return {f"{s.policy} {s.setting}": {"replicaHours": r(s.replica_hours, oracle.replica_hours),
                                         "kwh": r(s.kwh, oracle.kwh)} for s in rows}


def _emit(fmt: str, scn: Scenario, pool: str, rows: list[Summary],
          best: dict[str, Summary | None] | None, oracle: Summary | None = None,
          idle: IdleDecision | None = None, fit: ContextFit | None = None,
          read: TraceFile | None = None) -> None:
    if fmt == "table":
        print(f"{scn.md.name} on {pool}: {len(scn.trace)} requests, SLO p95 "
              f"{scn.slo_s:g}s" + (f", TTFT {scn.ttft_slo_s:g}s" if scn.ttft_slo_s else ""))
        print(table(rows + ([oracle] if oracle and oracle not in rows else [])))
        others = [s for s in rows if s is not oracle]
        if oracle is not None and others:
            print(f"\nvs the hindsight oracle ({oracle.replica_hours:.2f} replica-h, "
                  f"{oracle.kwh:.3f} kWh, attainment {oracle.slo_attainment:.2%}):")
            for key, v in _ratios(others, oracle).items():
                rh, kwh = v["replicaHours"], v["kwh"]
                print(f"  {key:<24} replica-h {'n/a' if rh is None else f'{rh:.2f}x'}, "
                      f"kWh {'n/a' if kwh is None else f'{kwh:.2f}x'}")
        if oracle is not None and oracle.slo_attainment < ATTAINMENT_GOAL:
            print(f"  note: even knowing the future, {scn.max_replicas} replicas (the "
                  f"maximum) miss the SLO in {oracle.minutes_violated} minute(s): the "
                  "SLO or the trace's rate is out of reach on this pool; raise "
                  "maxReplicas (--max-replicas) or relax the SLO (--slo-ms)")
        if best is not None:
            print("\ncheapest setting reaching 99% SLO attainment:")
            for name, s in best.items():
                print(f"  {name:<10} " + (f"{s.setting}: {s.replica_hours:.2f} replica-h, "
                                          f"{s.kwh:.3f} kWh" if s else "none"))
        if idle is not None:
            print(f"\nwattserve scale to zero ({idle.reason}, as the operator decides it at "
                  f"the run's end): {idle.message}")
        return
    doc: dict[str, Any] = {
        "model": scn.md.name, "pool": pool, "requests": len(scn.trace),
        "sloP95Seconds": scn.slo_s, "runs": [r.to_dict() for r in rows],
    }
    if fit is not None:
        doc["overContext"] = {"contextLength": scn.md.spec.model.context_length,
                              "refused": fit.refused, "outputsCut": fit.cut}
    if read is not None and (read.zero_outputs or read.zero_prompts):
        doc["zeroTokenRows"] = {"outputs": read.zero_outputs, "prompts": read.zero_prompts,
                                "replayedAs": 1}
    if best is not None:
        doc["cheapest"] = {k: (v.to_dict() if v else None) for k, v in best.items()}
    if oracle is not None:
        doc["oracle"] = oracle.to_dict()
        doc["vsOracle"] = _ratios([s for s in rows if s is not oracle], oracle)
    if idle is not None:
        doc["idleTimeout"] = {"seconds": idle.seconds, "reason": idle.reason,
                              "message": idle.message}
    if fmt == "json":
        print(json.dumps(doc, indent=2))
    else:
        print(dump_yaml(doc))
