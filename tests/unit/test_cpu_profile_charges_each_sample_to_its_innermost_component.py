"""benchmarks/cpu_profile.py: each py-spy sample is charged to the component nearest the
leaf, so JSON decoded inside kopf's watch counts as JSON and a fleet pass inside a
reconcile counts as the fleet; the table's shares add up to every sample."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

import cpu_profile  # noqa: E402

LOOP = "run_forever (asyncio/base_events.py:607);_run_once (asyncio/base_events.py:1922)"
RAW = "\n".join([
    f"{LOOP};watcher (kopf/_core/reactor/queueing.py:183);stream (kopf/_cogs/clients/api.py:278)"
    ";loads (json/__init__.py:346);raw_decode (json/decoder.py:353) 30",
    f"{LOOP};worker (wattserve/controller/reconciler.py:287)"
    ";assignment (wattserve/controller/fleetstate.py:175)"
    ";place_fleet (wattserve/planning/incremental.py:71) 20",
    f"{LOOP};worker (kopf/_core/reactor/queueing.py:338)"
    ";child_event (wattserve/controller/handlers.py:82)"
    ";child_upsert (wattserve/controller/intake.py:252) 10",
    f"{LOOP};worker (kopf/_core/reactor/queueing.py:338)"
    ";invoke (kopf/_core/actions/invocation.py:115) 15",
    f"{LOOP};select (selectors.py:468) 5",
    "garbage line without a count",
])


def test_json_inside_kopf_counts_as_json_and_the_fleet_inside_a_reconcile_as_the_fleet() -> None:
    total, shares = cpu_profile.breakdown(RAW)
    assert total == 80
    assert shares == {
        "JSON decoding (watch streams, answers)": 30,
        "fleet assignment and planning": 20,
        "caches and intake (slimming, echoes)": 10,
        "kopf watch and dispatch": 15,
        "event loop waiting (select)": 5,
    }


def test_the_table_lists_components_by_share_and_the_total() -> None:
    text = cpu_profile.table(RAW, rate_hz=50)
    rows = [line for line in text.splitlines() if line.startswith("| ") and "%" in line]
    assert rows[0].startswith("| JSON decoding") and "37.5 %" in rows[0]
    assert "| all | 80 samples | 1.6 |" in text


def test_an_empty_recording_says_so() -> None:
    assert cpu_profile.table("") == "py-spy recorded no samples\n"
