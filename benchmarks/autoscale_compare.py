"""The trace bank with two versions of wattserve's policy side by side, in one run.

The oracle and the baselines do not depend on the policy, so each entry's oracle and
cheapest passing baseline are computed once (and cached under ``--cache``, keyed by the
entry); wattserve runs on the same trace twice: the working tree's policy in this
process, and the policy of git revision ``--base`` (exported with ``git archive`` into a
temporary directory) in a subprocess. One markdown table: before and after per entry.

    python benchmarks/autoscale_compare.py --base e19d627 --markdown bank-compare.md
    python benchmarks/autoscale_compare.py --base e19d627 --seeds 2,3 --hours 0.5 \
        --slo 1.5 --no-real --no-oracle     # held-out seeds, quick: wattserve only
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "operator"))

from wattserve.simulate import bank  # noqa: E402
from wattserve.simulate.families import FAMILIES  # noqa: E402
from wattserve.simulate.report import Summary  # noqa: E402
from wattserve.simulate.sweep import ATTAINMENT_GOAL, run_policy, sweep_policy  # noqa: E402

# Run in the subprocess with the base revision first on sys.path: one JSON line per entry.
_CHILD = """
import json, sys
from dataclasses import asdict
from pathlib import Path
from wattserve.simulate import bank
from wattserve.simulate.sweep import run_policy
root = Path(sys.argv[1])
for line in sys.stdin:
    e = json.loads(line)
    m = next(x for x in bank.MODELS if x.key == e["model"])
    entry = bank.Entry(e["trace"], m, e["slo"], e["seed"], e["hours"])
    s = run_policy(bank.scenario(entry, root), "wattserve").summary
    print(json.dumps(asdict(s)), flush=True)
"""


def _key(e: bank.Entry) -> str:
    return f"{e.label} h{e.hours:g}".replace(" ", "_").replace("#", "-")


def reference(e: bank.Entry, cache: Path, baselines: bool) -> dict[str, Any]:
    """Oracle and cheapest passing baseline of one entry (cached)."""
    path = cache / (_key(e) + (".pkl" if baselines else ".oracle.pkl"))
    if path.exists():
        return pickle.loads(path.read_bytes())  # type: ignore[no-any-return]
    scn = bank.scenario(e, ROOT)
    found = []
    if baselines:
        for name in ("hpa", "static"):
            _runs, best = sweep_policy(scn, name)
            if best is not None:
                found.append(best)
        for target in bank.RAY_BANK_TARGETS:
            run = run_policy(scn, "rayserve", target)
            if run.summary.slo_attainment >= ATTAINMENT_GOAL:
                found.append(run)
    cheapest = min(found, key=lambda r: (r.summary.replica_hours, r.summary.kwh), default=None)
    ref = {"oracle": run_policy(scn, "oracle").summary,
           "cheapest": None if cheapest is None else cheapest.summary,
           "slo_s": scn.slo_s, "ttft_slo_s": scn.ttft_slo_s, "requests": len(scn.trace)}
    path.write_bytes(pickle.dumps(ref))
    return ref


def _after(e: bank.Entry) -> Summary:
    return run_policy(bank.scenario(e, ROOT), "wattserve").summary


def _before(items: list[bank.Entry], base: str) -> list[Summary]:
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", base, "operator"],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        lines = "".join(json.dumps({"trace": e.trace, "model": e.model.key, "slo": e.slo,
                                    "seed": e.seed, "hours": e.hours}) + "\n" for e in items)
        out = subprocess.run([sys.executable, "-c", _CHILD, str(ROOT)], input=lines,
                             text=True, stdout=subprocess.PIPE, check=True,
                             env={**os.environ, "PYTHONPATH": f"{tmp}/operator"})
    return [Summary(**json.loads(x)) for x in out.stdout.splitlines() if x.strip()]


def _outcome(e: bank.Entry, ref: dict[str, Any], ws: Summary) -> bank.Outcome:
    return bank.Outcome(e.label, e.trace, e.model.key, e.seed, ref["slo_s"], ref["ttft_slo_s"],
                        ref["requests"], ws, ref["oracle"], ref["cheapest"], 0.0)


def _x(v: float | None) -> str:
    return "–" if v is None else f"{v:.2f}×"


def table(rows: list[tuple[bank.Outcome, bank.Outcome]]) -> str:
    out = ["| entry | SLO p95 / TTFT | oracle att. | cheapest baseline ≥ 99 % | before: att. "
           "| rh / oracle | kWh / oracle | rh / cheapest | after: att. | rh / oracle "
           "| kWh / oracle | rh / cheapest | targets after |", "|" + "---|" * 13]
    for b, a in rows:
        c = a.cheapest
        ttft = "–" if a.ttft_slo_s is None else f"{a.ttft_slo_s:g} s"
        out.append(
            f"| {a.entry} | {a.slo_s:g} s / {ttft} | {a.oracle.slo_attainment:.2%} | "
            f"{'none' if c is None else f'{c.policy} {c.setting}'} | "
            f"{b.wattserve.slo_attainment:.2%} | {_x(b.ratio('replica_hours', b.oracle))} | "
            f"{_x(b.ratio('kwh', b.oracle))} | {_x(b.ratio('replica_hours', c))} | "
            f"{a.wattserve.slo_attainment:.2%} | {_x(a.ratio('replica_hours', a.oracle))} | "
            f"{_x(a.ratio('kwh', a.oracle))} | {_x(a.ratio('replica_hours', c))} | "
            f"{'met' if a.met else '**missed**'} |")
    return "\n".join(out)


def plain_table(items: list[bank.Entry], before: list[Summary], after: list[Summary]) -> str:
    """Without the oracle: attainment and replica-hours, before and after."""
    out = ["| entry | before: att. | replica-h | after: att. | replica-h | after / before |",
           "|" + "---|" * 6]
    for e, b, w in zip(items, before, after, strict=True):
        ratio = w.replica_hours / b.replica_hours if b.replica_hours > 0 else float("nan")
        out.append(f"| {e.label} | {b.slo_attainment:.2%} | {b.replica_hours:.2f} | "
                   f"{w.slo_attainment:.2%} | {w.replica_hours:.2f} | {ratio:.2f}× |")
    ok_b = sum(b.slo_attainment >= ATTAINMENT_GOAL for b in before)
    ok_a = sum(w.slo_attainment >= ATTAINMENT_GOAL for w in after)
    rh_b, rh_a = sum(b.replica_hours for b in before), sum(w.replica_hours for w in after)
    out.append(f"\nattainment >= 99 %: before {ok_b}/{len(items)}, after {ok_a}/{len(items)}; "
               f"replica-h in all: before {rh_b:.1f}, after {rh_a:.1f} ({rh_a / rh_b:.2f}×).")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", required=True, help="git revision of the 'before' policy")
    ap.add_argument("--seeds", default="1")
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--traces", help="comma-separated (default: all)")
    ap.add_argument("--models", help="comma-separated model keys (default: all)")
    ap.add_argument("--slo", type=float, help="only this SLO factor (1.5 or 3)")
    ap.add_argument("--no-real", action="store_true", help="generated families only")
    ap.add_argument("--no-baselines", action="store_true", help="oracle only (faster)")
    ap.add_argument("--no-oracle", action="store_true",
                    help="neither oracle nor baselines: wattserve before and after only")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "bank-ref")
    ap.add_argument("--markdown", type=Path)
    a = ap.parse_args(argv)
    traces = a.traces.split(",") if a.traces else (
        list(FAMILIES) if a.no_real else None)
    try:
        items = bank.entries(seeds=[int(s) for s in a.seeds.split(",")], hours=a.hours,
                             traces=traces, models=a.models.split(",") if a.models else None)
    except ValueError as exc:
        print(f"autoscale_compare: {exc}", file=sys.stderr)
        return 2
    if a.slo:
        items = [e for e in items if e.slo == a.slo]
    a.cache.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()

    def say(message: str) -> None:
        print(f"[{time.monotonic() - t0:6.0f}s] {message}", file=sys.stderr, flush=True)

    say(f"{len(items)} entries" + ("" if a.no_oracle else
                                      f"; oracle and baselines (cached in {a.cache})"))
    with ProcessPoolExecutor(max(1, a.jobs)) as pool:
        refs = [] if a.no_oracle else list(pool.map(
            reference, items, [a.cache] * len(items), [not a.no_baselines] * len(items)))
        say("wattserve, working tree")
        after = list(pool.map(_after, items))
    say(f"wattserve, {a.base}")
    before = _before(items, a.base)
    if a.no_oracle:
        text = plain_table(items, before, after) + "\n"
        print(text)
        if a.markdown:
            a.markdown.write_text(text)
        return 0
    rows = [(_outcome(e, r, b), _outcome(e, r, w))
            for e, r, b, w in zip(items, refs, before, after, strict=True)]
    text = (table(rows) + "\n\nbefore: " + bank.bank_summary([b for b, _ in rows])
            + "\n\nafter: " + bank.bank_summary([w for _, w in rows]) + "\n")
    print(text)
    if a.markdown:
        a.markdown.write_text(text)
    say("done")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
