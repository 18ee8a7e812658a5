"""`wattserve plan -f model.yaml --pools pools.yaml [-o table|json|yaml]`."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from wattserve.api import (
    ModelDeployment,
    Objective,
    ServingPool,
    SpecError,
    load_yaml_documents,
    parse_documents,
    parse_each,
    parse_model_deployment,
    parse_serving_pool,
    read_manifest,
    require_type_meta,
)
from wattserve.api.manifests import dump_yaml
from wattserve.cli.args import OneLineParser
from wattserve.cli.plan_fleet import IncumbentError, plan_fleet
from wattserve.cli.plan_fleet import data as fleet_data
from wattserve.cli.plan_fleet import table as fleet_table
from wattserve.cli.table import printable, render_table
from wattserve.planning import Candidate, Plan, plan
from wattserve.planning.summary import decimal_string, placement_summary
from wattserve.render.settings import SettingsError, settings_from_env


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="wattserve plan",
        description="Place ModelDeployments on the ServingPool that meets their latency SLO "
                    "at the lowest cost, energy or carbon, and explain why.",
    )
    parser.add_argument("-f", "--filename", required=True, action="append",
                        help="ModelDeployment YAML or a directory of them (repeatable; '-' for "
                             "stdin); several models are planned together as a fleet")
    parser.add_argument("--pools", required=True, action="append",
                        help="ServingPool YAML (repeatable)")
    parser.add_argument("-o", "--output", choices=("table", "json", "yaml"), default="table")
    fleet = parser.add_argument_group("fleet (several models)")
    fleet.add_argument("--fleet-objective", choices=("cost", "energy", "carbon"),
                       default="cost", help="what the optimum minimises: $/hour, watts or "
                       "gCO2/hour of the whole fleet (default cost)")
    fleet.add_argument("--time-limit", type=_positive_seconds, default=30.0,
                       help="seconds the exact solver may run (default 30)")
    fleet.add_argument("--no-optimum", action="store_true",
                       help="skip the exact solve (ILP)")
    fleet.add_argument("--incumbent", metavar="FILE",
                       help="a previous `plan -o json|yaml` of this fleet: re-plan from it "
                       "(models keep their pools unless their own objective improves; never "
                       "costs more than it while it still fits, e.g. after pools grew)")
    return parser


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, got {text!r}") from None
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"must be > 0 and <= 3600 seconds, got {text!r}")
    return value


def _usable(pools: list[ServingPool]) -> list[ServingPool]:
    """The pools the operator would use: one whose accelerators the GPU serving image
    cannot drive is left out, as the operator does, with a line on stderr."""
    try:
        settings = settings_from_env(os.environ)
    except SettingsError as exc:
        raise _InputError(str(exc)) from None
    kept = []
    for pool in pools:
        problem = settings.accelerator_problem(pool)
        if problem is None:
            kept.append(pool)
        else:
            print(f"wattserve plan: ServingPool {pool.name} left out: {problem}",
                  file=sys.stderr)
    return kept


def run(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        if [*args.filename, *args.pools, args.incumbent].count("-") > 1:
            raise _InputError("stdin (-) can be read once: give the other -f/--pools/"
                              "--incumbent a file")
        models = _load(_expand(args.filename), "ModelDeployment", parse_model_deployment)
        pools = _load(_expand(args.pools), "ServingPool", parse_serving_pool)
        _check_unique("ServingPool", [p.name for p in pools])
        pools = _usable(pools)
        _check_unique("ModelDeployment", [f"{md.namespace}/{md.name}" for md in models])
        if args.incumbent is not None and len(models) < 2:
            raise _InputError("--incumbent: re-plans a fleet; give two or more "
                              "ModelDeployments with -f")
    except _InputError as exc:
        print(f"wattserve plan: {exc}", file=sys.stderr)
        return 2
    if len(models) > 1:
        return _run_fleet(args, models, pools)
    plans = [plan(md, pools) for md in models]
    if args.output == "table":
        print("\n\n".join(_table(md, result) for md, result in zip(models, plans, strict=True)))
    else:
        data = [{"modelDeployment": md.name, "namespace": md.namespace,
                 "objective": result.objective.value, "placement": placement_summary(result)}
                for md, result in zip(models, plans, strict=True)]
        payload: Any = data[0] if len(data) == 1 else data
        if args.output == "json":
            print(json.dumps(payload, indent=2))
        else:
            print(dump_yaml(payload), end="")
    return 0 if all(result.chosen is not None for result in plans) else 1


def _run_fleet(args: argparse.Namespace, models: list[ModelDeployment],
               pools: list[ServingPool]) -> int:
    objective = Objective(args.fleet_objective)
    incumbent = None
    if args.incumbent is not None:
        try:
            incumbent = _incumbent(args.incumbent)
        except OSError as exc:
            print(f"wattserve plan: --incumbent: {args.incumbent}: cannot read: "
                  f"{exc.strerror or exc}", file=sys.stderr)
            return 2
        except SpecError as exc:
            print(f"wattserve plan: --incumbent: {exc}", file=sys.stderr)
            return 2
    try:
        members, greedy, rows = plan_fleet(models, pools, objective=objective,
                                           with_optimum=not args.no_optimum,
                                           time_limit_s=args.time_limit, incumbent=incumbent)
    except IncumbentError as exc:
        print(f"wattserve plan: --incumbent: {exc}", file=sys.stderr)
        return 2
    payload = fleet_data(members, greedy, rows, pools, objective)
    if args.output == "table":
        print(fleet_table(payload))
    elif args.output == "json":
        print(json.dumps(payload, indent=2))
    else:
        print(dump_yaml(payload), end="")
    return 0 if all(got.candidate is not None for got in greedy.values()) else 1


class _InputError(Exception):
    pass


def _incumbent(path: str) -> object:
    """The one document of a previous plan's output (JSON or YAML); SpecError naming the
    file (and line) when it is not one readable document."""
    docs = parse_documents(read_manifest(path), path)
    if len(docs) != 1:
        raise SpecError(path, f"holds {len(docs)} documents: expected one "
                              "`wattserve plan -o json|yaml` output")
    return docs[0]


def _expand(paths: list[str]) -> list[str]:
    """Directories become their *.yaml / *.yml / *.json files, sorted (as kubectl -f)."""
    out: list[str] = []
    for path in paths:
        if not path.strip():
            raise _InputError("-f/--pools: an empty path (an unset variable?)")
        folder = Path(path)
        if path != "-" and folder.is_dir():
            files = sorted(str(p) for p in folder.iterdir()
                           if p.suffix in (".yaml", ".yml", ".json") and p.is_file())
            if not files:
                raise _InputError(f"{path}: directory has no .yaml files (nor .yml or .json)")
            out.extend(files)
        else:
            out.append(path)
    return out


T = TypeVar("T")


def _load(paths: list[str], kind: str, parse: Callable[[object], T]) -> list[T]:
    """Parse every document of every file; errors name the file, document and field."""
    out: list[T] = []
    for path in paths:
        try:
            out.extend(parse_each(_docs(path, kind), path, parse))
        except SpecError as exc:
            raise _InputError(str(exc)) from None
    return out


def _docs(path: str, kind: str) -> list[dict[str, Any]]:
    """Documents of ``kind`` in the file; any other kind is an error naming its index."""
    try:
        docs = load_yaml_documents(read_manifest(path), path)
        require_type_meta(docs, path)
    except OSError as exc:
        raise _InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise _InputError(f"{path}: not a UTF-8 text file") from None
    except SpecError as exc:
        raise _InputError(str(exc)) from None
    out = []
    for index, doc in enumerate(docs):
        got = doc["kind"]
        if got != kind:
            raise _InputError(f"{path}: document {index + 1}: kind: expected {kind}, got {got!r}")
        out.append(doc)
    return out


def _check_unique(kind: str, names: list[str]) -> None:
    """Two objects of one name are one object in a cluster (the second would replace the
    first): refused, rather than planned twice."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise _InputError(f"{kind} {name!r} is defined twice; the API server keeps one "
                              "object per name: remove or rename one")
        seen.add(name)


def _shape(cand: Candidate) -> str:
    if cand.engine == "-":
        return "-"
    if cand.tensor_parallel:
        return f"TP{cand.tensor_parallel}"
    return f"{cand.threads} thr"


def _table(md: ModelDeployment, result: Plan) -> str:
    spec = md.spec
    size = f"{spec.model.parameters / 1e9:g}B"
    if spec.model.active_parameters is not None:
        size += f" ({spec.model.active_parameters / 1e9:g}B active)"
    header = (f"ModelDeployment {md.namespace}/{md.name}: {printable(spec.model.name)} "
              f"({size} {spec.model.quantization.value}), "
              f"SLO p95 {spec.slo.latency_p95_ms} ms, "
              f"{spec.expected_load.requests_per_second:g} req/s, objective {spec.objective.value}")
    rows = []
    for cand in result.candidates:
        chosen = result.chosen is not None and cand.pool == result.chosen.pool
        feasible = cand.replicas > 0
        rows.append([
            ("* " if chosen else "  ") + cand.pool,
            cand.engine,
            cand.accelerator,
            _shape(cand),
            "yes" if cand.feasible else "no",
            str(cand.replicas) if feasible else "-",
            _cell(cand.predicted_p95_ms) if feasible else "-",
            _cell(cand.tokens_per_second_per_replica) if feasible else "-",
            _cell(cand.usd_per_hour) if feasible else "-",
            _cell(cand.usd_per_million_tokens) if feasible else "-",
            _cell(cand.joules_per_token) if feasible else "-",
            _cell(cand.grams_co2_per_million_tokens) if feasible else "-",
            cand.reason,
        ])
    table = render_table(
        ["POOL", "ENGINE", "ACCEL", "SHAPE", "FEASIBLE", "REPLICAS", "P95 MS", "TOK/S/REP",
         "$/HOUR", "$/1M TOK", "J/TOKEN", "gCO2/1M", "REASON"], rows, max_width=70)
    verdict = (f"chosen: {result.chosen.pool} — {result.reason}" if result.chosen
               else f"not placed: {result.reason}")
    return f"{header}\n{table}\n{verdict}"


def _cell(value: float) -> str:
    """A figure for the table: three significant digits, plain up to ten million, then
    with an exponent (a price typed with extra zeros must not print a 31-digit cell)."""
    return decimal_string(value, 3) if abs(value) < 1e7 else f"{value:.3g}"
