"""Trace files of the public layouts read into one request list; bad files refused by line
and column; `wattserve simulate --trace` and the bank take any of them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from wattserve.simulate.bank import MODELS, entries, scenario
from wattserve.simulate.cli import run
from wattserve.simulate.trace import TraceRequest
from wattserve.simulate.trace_files import read_trace

ROOT = Path(__file__).resolve().parents[2]
SMOL = ROOT / "examples" / "models" / "smollm2-135m.yaml"
POOLS = ROOT / "examples" / "pools.yaml"


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_azure_2024_timestamps_with_a_zone_and_seven_fraction_digits(tmp_path: Path) -> None:
    path = _write(tmp_path, "code.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n"
                  "2024-05-10 00:00:00.0099300+00:00,2048,28\n"
                  "2024-05-10 00:00:01.5+00:00,7000,3\n"
                  "2024-05-10 02:00:01+02:00,10,0\n")  # 00:00:01 UTC
    assert read_trace(path) == [TraceRequest(0.0, 2048, 28), TraceRequest(0.99007, 10, 1),
                                TraceRequest(1.49007, 7000, 3)]


def test_burstgpt_seconds_and_spaced_column_names(tmp_path: Path) -> None:
    path = _write(tmp_path, "BurstGPT_1.csv",
                  "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
                  "5,ChatGPT,472,18,490,Conversation log\n"
                  "45,GPT-4,1087,0,1087,Conversation log\n"
                  "47.5,ChatGPT,200,300,500,API log\n")
    assert read_trace(path) == [TraceRequest(0.0, 472, 18), TraceRequest(40.0, 1087, 1),
                                TraceRequest(42.5, 200, 300)]


def test_mooncake_json_lines_are_milliseconds(tmp_path: Path) -> None:
    rows = [{"timestamp": 3000, "input_length": 9000, "output_length": 12, "hash_ids": [1, 2]},
            {"timestamp": 0, "input_length": 6758, "output_length": 500, "hash_ids": [0]}]
    path = _write(tmp_path, "trace.jsonl", "\n".join(map(json.dumps, rows)) + "\n\n")
    assert read_trace(path) == [TraceRequest(0.0, 6758, 500), TraceRequest(3.0, 9000, 12)]
    array = _write(tmp_path, "trace.json", json.dumps(rows))
    assert read_trace(array) == read_trace(path)


def test_units_from_names_epochs_and_the_explicit_flag(tmp_path: Path) -> None:
    tsv = _write(tmp_path, "t.tsv", "arrival_time_ms\tprompt_tokens\tcompletion_tokens\n"
                 "1000\t5\t6\n1500\t7\t8\n")
    assert [r.arrival_s for r in read_trace(tsv)] == [0.0, 0.5]
    epoch_ms = _write(tmp_path, "e.csv", "timestamp,input_tokens,output_tokens\n"
                      "1732900000000,5,6\n1732900002000,7,8\n")
    assert [r.arrival_s for r in read_trace(epoch_ms)] == [0.0, 2.0]
    plain = _write(tmp_path, "p.csv", "time,isl,osl\n10,5,6\n12,7,8\n")
    assert [r.arrival_s for r in read_trace(plain)] == [0.0, 2.0]
    assert [r.arrival_s for r in read_trace(plain, time_unit="ms")] == [0.0, 0.002]


def test_scales_and_the_limit_apply_after_reading(tmp_path: Path) -> None:
    path = _write(tmp_path, "p.csv", "time,isl,osl\n0,100,10\n10,100,10\n30,100,10\n")
    got = read_trace(path, rate_scale=2.0, length_scale=0.5, prompt_scale=0.25, limit_s=5.0)
    assert got == [TraceRequest(0.0, 25, 5), TraceRequest(5.0, 25, 5)]
    assert read_trace(_write(tmp_path, "empty.csv", "")) == []


@pytest.mark.parametrize(("name", "text", "message"), [
    ("a.csv", "when,prompt,out\n1,2,3\n", "no time column"),
    ("b.csv", "timestamp,prompt_tokens\n1,2\n", "no output column"),
    ("c.csv", "time,isl,osl\n1,2,3\n2,x,3\n", "line 3: isl must be a whole number"),
    ("d.csv", "time,isl,osl\n1,2,3\n2,2.5,3\n", "line 3: isl"),
    ("e.csv", "time,isl,osl\n1,2,-3\n", "line 2: osl"),
    ("f.csv", "time,isl,osl\nyesterday,2,3\n", "line 2: time is neither a number nor a date"),
    ("g.csv", "time,isl,osl\n1,2,3\n2024-01-01 00:00:00,2,3\n", "mixes numbers and date-times"),
    ("h.csv", "time,isl,osl\nnan,2,3\n", "must be finite"),
    ("i.csv", "time,isl,osl\n0,2,3\n1e12,2,3\n", "at most 2678400 s"),
    ("j.jsonl", '{"time": 1, "isl": 2, "osl": 3}\n{"time": 2,\n', "line 2: not a JSON object"),
    ("k.jsonl", '{"time": 1, "isl": 2, "osl": 3}\n[1, 2]\n', "line 2: expected a JSON object"),
    ("l.csv", "time,isl,osl\n1,2,\x003\n", "line"),
])
def test_bad_files_are_refused_naming_the_line_and_column(tmp_path: Path, name: str,
                                                          text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        read_trace(_write(tmp_path, name, text))


def test_a_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes("time,isl,osl\n1,2,3 caf\xe9\n".encode("latin-1"))
    with pytest.raises(ValueError, match="not UTF-8"):
        read_trace(path)


def test_simulate_replays_a_json_lines_trace_and_refuses_a_bad_one(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [{"timestamp": i * 400, "input_length": 64, "output_length": 32} for i in range(300)]
    good = _write(tmp_path, "conv.jsonl", "\n".join(map(json.dumps, rows)))
    assert run(["--trace", str(good), "--model", str(SMOL), "--pools", str(POOLS),
                "--no-oracle", "-o", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["requests"] == 300
    bad = _write(tmp_path, "bad.csv", "time,isl,osl\n1,2,many\n")
    assert run(["--trace", str(bad), "--model", str(SMOL), "--pools", str(POOLS)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"wattserve simulate: --trace {bad}: line 2: osl must be a whole number "
                   "0..1000000, got 'many'"]
    empty = _write(tmp_path, "empty.csv", "time,isl,osl\n")
    assert run(["--trace", str(empty), "--model", str(SMOL), "--pools", str(POOLS)]) == 2
    assert "no requests" in capsys.readouterr().err


def test_the_bank_holds_out_a_trace_file_by_path(tmp_path: Path) -> None:
    rows = [{"timestamp": i * 250, "input_length": 6000, "output_length": 40}
            for i in range(400)]
    path = _write(tmp_path, "kimi.jsonl", "\n".join(map(json.dumps, rows)))
    items = entries(traces=[str(path), "azure"], models=["smollm2-cpu"])
    assert [e.label for e in items][:2] == ["kimi.jsonl smollm2-cpu SLO x1.5",
                                            "kimi.jsonl smollm2-cpu SLO x3"]
    assert items[0].from_file and not items[2].from_file
    scn = scenario(items[0], ROOT)
    assert len(scn.trace) == 400 and scn.md.spec.scaling.min_replicas == 1
    # A small model keeps the long prompts longer than its chat mean (4x at most).
    assert scn.trace[0].prompt_tokens == 4 * MODELS[0].fit_real[0]  # type: ignore[index]
    with pytest.raises(ValueError, match="neither a bank trace"):
        entries(traces=[str(tmp_path / "missing.csv")])


def test_simulate_replays_only_the_first_hours_asked_for(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = "".join(f"{i * 60},64,32\n" for i in range(120))  # one request a minute, 2 h
    path = _write(tmp_path, "t.csv", "arrival_time_s,prompt_tokens,output_tokens\n" + rows)
    assert run(["--trace", str(path), "--trace-hours", "0.5", "--model", str(SMOL),
                "--pools", str(POOLS), "--no-oracle", "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["requests"] == 31
    assert run(["--trace", str(path), "--trace-hours", "0", "--model", str(SMOL),
                "--pools", str(POOLS)]) == 2
    assert capsys.readouterr().err.startswith("wattserve simulate: --trace-hours must be")


def test_simulate_says_when_even_the_oracle_cannot_meet_the_slo(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = "".join(f"{i * 0.02:.2f},300,200\n" for i in range(6000))  # 50 req/s, 2 min
    path = _write(tmp_path, "flood.csv", "time,isl,osl\n" + rows)
    assert run(["--trace", str(path), "--model", str(SMOL), "--pools", str(POOLS),
                "--max-replicas", "2"]) == 0
    out = capsys.readouterr().out
    assert "note: even knowing the future, 2 replicas (the maximum) miss the SLO" in out


def test_splitwise_vidur_gzip_and_epoch_nanoseconds_are_read(tmp_path: Path) -> None:
    import gzip

    splitwise = _write(tmp_path, "sw.csv", "request_id,request_type,application_id,"
                       "arrival_timestamp,batch_size,prompt_size,token_size\n"
                       "0,2,0,0.5,1,1020,43\n1,2,0,2.0,1,512,7\n")
    assert read_trace(splitwise) == [TraceRequest(0.0, 1020, 43), TraceRequest(1.5, 512, 7)]
    vidur = _write(tmp_path, "v.csv", "arrived_at,num_prefill_tokens,num_decode_tokens\n"
                   "10,100,5\n13,200,6\n")
    assert read_trace(vidur) == [TraceRequest(0.0, 100, 5), TraceRequest(3.0, 200, 6)]
    packed = tmp_path / "sw.csv.gz"  # read by its magic bytes, not its name
    packed.write_bytes(gzip.compress(splitwise.read_bytes()))
    assert read_trace(packed) == read_trace(splitwise)
    ns = _write(tmp_path, "ns.csv", "ts,input_tokens,output_tokens\n"
                "1714564800000000000,5,6\n1714564803000000000,7,8\n")
    assert [r.arrival_s for r in read_trace(ns)] == [0.0, 3.0]
    # Lower-case RFC 3339 separators are date-times too.
    rfc = _write(tmp_path, "r.csv", "time,isl,osl\n2023-11-16t18:15:47.5z,1,1\n"
                 "2023-11-16T18:15:49.5Z,1,1\n")
    assert [r.arrival_s for r in read_trace(rfc)] == [0.0, 2.0]


@pytest.mark.parametrize(("text", "message"), [
    # A quote opened and never closed swallows the rest: named where it opens, cut short.
    ("time,isl,osl\n0,1,1\n" + "".join(f"{i},1,1\n" for i in range(1, 5))
     + '5,"10,5\n' + "".join(f"{i},1,1\n" for i in range(6, 3000)),
     r"^line 7: a quoted field opened here is not closed on its line"),
    ("\n\ntime,isl,osl\n0,1,1\n1,x,2\n", r"^line 5: isl must be"),
    ('\n{"time": 0, "isl": 1, "osl": 1}\n{"time": 1, "isl": 1}\n',
     r"^line 3: osl must be a whole number 0\.\.1000000, got nothing \(missing\)$"),
    ('{"time": 0, "isl": true, "osl": 1}\n', r"^line 1: isl must be a whole number"),
    ("time,isl,osl\n0,1,1\n2023-01-01,2,2\n", r"^line 3: time mixes numbers and date-times"),
    ("time,isl,osl\n2023-01-01 00:00:00,1,1\n2023-01-01 00:00:01Z,1,1\n",
     r"^line 3: time mixes date-times with and without a time zone"),
    ("time,isl,osl\n0,1," + "9" * 500 + "\n", r"^line 2: osl must .*\(502 characters\)$"),
])
def test_refusals_name_the_right_line_in_one_short_line(tmp_path: Path, text: str,
                                                       message: str) -> None:
    with pytest.raises(ValueError, match=message) as err:
        read_trace(_write(tmp_path, "bad.csv" if "{" not in text else "bad.jsonl", text))
    assert "\n" not in str(err.value) and len(str(err.value)) < 200


def test_the_span_limit_applies_to_the_part_replayed(tmp_path: Path) -> None:
    path = _write(tmp_path, "weeks.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n"
                  "2024-05-01 00:00:00,10,10\n2024-05-01 00:00:05,10,10\n"
                  "2024-06-15 00:00:00,10,10\n")
    assert len(read_trace(path, limit_s=3600.0)) == 2
    with pytest.raises(ValueError, match=r"31 days.*--trace-hours"):
        read_trace(path)


def test_simulate_leaves_out_prompts_longer_than_the_context_and_says_so(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = "".join(f"{i},64,32\n" for i in range(40)) + "40,5000,10\n41,2000,500\n"
    path = _write(tmp_path, "t.csv", "time,isl,osl\n" + rows)  # SmolLM2: 2,048 tokens
    assert run(["--trace", str(path), "--model", str(SMOL), "--pools", str(POOLS),
                "--no-oracle", "-o", "json"]) == 0
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert doc["requests"] == 41
    assert doc["overContext"] == {"contextLength": 2048, "refused": 1, "outputsCut": 1}
    assert captured.err.strip() == (
        "wattserve simulate: 1 of 42 requests have prompts that fill the model's "
        "contextLength (2048 tokens); a server refuses them (400), so they are left out of "
        "the replay; 1 outputs are cut where the context ends")
    huge = _write(tmp_path, "huge.csv", "time,isl,osl\n0,900000,10\n")
    assert run(["--trace", str(huge), "--model", str(SMOL), "--pools", str(POOLS)]) == 2
    assert "every request's prompt fills the model's contextLength" in capsys.readouterr().err


def test_the_bank_refuses_a_bad_held_out_trace_before_any_run(tmp_path: Path) -> None:
    bad = _write(tmp_path, "bad.csv", "time,input_tokens,output_tokens\n0,1,1\n1,abc,2\n")
    with pytest.raises(ValueError, match=r"^trace .*bad\.csv: line 3: input_tokens must be"):
        entries(traces=[str(bad)])
    empty = _write(tmp_path, "empty.csv", "")
    with pytest.raises(ValueError, match="no requests in the file"):
        entries(traces=[str(empty)])


def test_mooncake_names_with_fractional_times_are_refused_not_read_as_ms(
        tmp_path: Path) -> None:
    path = _write(tmp_path, "secs.csv", "timestamp,input_length,output_length\n"
                  "0.0,10,5\n2.5,10,5\n60,10,5\n")
    with pytest.raises(ValueError, match=r"^line 3: timestamp 2\.5 has a fraction.*--time-unit"):
        read_trace(path)
    assert [r.arrival_s for r in read_trace(path, time_unit="s")] == [0.0, 2.5, 60.0]
