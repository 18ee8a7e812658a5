"""Trace files as users hand them over: from a pipe, with failed requests, in borrowed
column names, with text columns, pretty-printed JSON; and the bank's held-out files with a
unit and a cut. Each is read whole and right, or refused in one line naming the line."""

from __future__ import annotations

import gzip
import json
import os
import threading
from pathlib import Path

import pytest
from wattserve.simulate.bank import entries, scenario
from wattserve.simulate.cli import run
from wattserve.simulate.trace import TraceRequest
from wattserve.simulate.trace_files import read_trace, read_trace_file

ROOT = Path(__file__).resolve().parents[2]
SMOL = ROOT / "examples" / "models" / "smollm2-135m.yaml"
POOLS = ROOT / "examples" / "pools.yaml"
ROWS = [{"timestamp": i * 3000, "input_length": 100 + i, "output_length": 10}
        for i in range(300)]


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _fifo(tmp_path: Path, data: bytes, chunk: int) -> Path:
    """A named pipe fed in small writes by a thread (a producer writing line by line)."""
    path = tmp_path / "pipe"
    os.mkfifo(path)

    def feed() -> None:
        with open(path, "wb") as out:
            for i in range(0, len(data), chunk):
                out.write(data[i:i + chunk])
                out.flush()

    threading.Thread(target=feed, daemon=True).start()
    return path


@pytest.mark.parametrize("compressed", [False, True])
def test_a_trace_from_a_pipe_is_read_whole(tmp_path: Path, compressed: bool) -> None:
    text = "".join(json.dumps(r) + "\n" for r in ROWS).encode()
    data = gzip.compress(text) if compressed else text
    trace = read_trace(_fifo(tmp_path, data, 64))
    assert len(trace) == 300
    assert trace[0] == TraceRequest(0.0, 100, 10) and trace[-1].arrival_s == 897.0


def test_zero_token_rows_are_replayed_as_one_token_and_counted(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, "BurstGPT.csv",
                  "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
                  "5,ChatGPT,472,18,490,Conversation log\n"
                  "45,ChatGPT,1087,0,1087,Conversation log\n"
                  "118,GPT-4,0,0,0,Conversation log\n"
                  "160,ChatGPT,1360,250,1610,API log\n")
    read = read_trace_file(path)
    assert (read.zero_outputs, read.zero_prompts) == (2, 1)
    assert [r.gen_tokens for r in read.requests] == [18, 1, 1, 250]
    assert run(["--trace", str(path), "--model", str(SMOL), "--pools", str(POOLS),
                "--no-oracle", "-o", "json"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["zeroTokenRows"] == {"outputs": 2, "prompts": 1,
                                                    "replayedAs": 1}
    assert "2 with 0 output tokens and 1 with 0 prompt tokens of 4 requests replayed " \
           "with 1" in out.err


def test_mooncake_names_with_epoch_seconds_are_refused_not_read_as_ms(tmp_path: Path) -> None:
    rows = [{"timestamp": 1_700_000_000 + 60 * i, "input_length": 500, "output_length": 100}
            for i in range(30)]
    path = _write(tmp_path, "day.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ValueError, match=r"^line 1: timestamp 1700000000 reads like an epoch "
                                         r"in seconds.*--time-unit s\|ms"):
        read_trace(path)
    assert read_trace(path, time_unit="s")[-1].arrival_s == 29 * 60.0


def test_a_time_unit_for_date_times_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "az.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n"
                  "2023-11-16 18:15:46.6805900,374,44\n2023-11-16 18:15:50.9951690,396,109\n")
    with pytest.raises(ValueError, match=r"^TIMESTAMP holds date-times.*leave the time unit"):
        read_trace(path, time_unit="ns")
    assert len(read_trace(path)) == 2


def test_a_row_with_more_fields_than_the_header_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "shifted.csv", "model,timestamp,prompt_tokens,output_tokens\n"
                  "gpt,4,5,100,10\nllama,6,200,20\n")
    with pytest.raises(ValueError, match=r"^line 2: 5 fields, the header has 4"):
        read_trace(path)


def test_lines_of_blanks_are_skipped_anywhere_in_a_csv(tmp_path: Path) -> None:
    for name, text, n in (("t.csv", "arrival_time,prompt_tokens,output_tokens\n0,1,1\n  \n"
                                    "1,1,1\n,,\n  \n", 2),
                          ("t.tsv", "arrival_time\tprompt_tokens\toutput_tokens\n0\t1\t1\n"
                                    "\t\t\n", 1)):
        assert len(read_trace(_write(tmp_path, name, text))) == n


def test_a_text_column_over_several_lines_is_refused_saying_why(tmp_path: Path) -> None:
    path = _write(tmp_path, "log.csv", 'arrival_time,prompt_tokens,output_tokens,prompt\n'
                  '0,100,10,"hello\nworld"\n1,100,10,"x"\n')
    with pytest.raises(ValueError, match=r"^line 2: .*holds text over several lines"):
        read_trace(path)


def test_pretty_printed_json_names_the_line_a_record_starts_on(tmp_path: Path) -> None:
    records = [{"arrival_time": 0, "prompt_tokens": 100, "output_tokens": 10},
               {"arrival_time": 1, "prompt_tokens": -1, "output_tokens": 10}]
    array = _write(tmp_path, "a.json", json.dumps(records, indent=2))
    with pytest.raises(ValueError, match=r"^line 7: prompt_tokens must be a whole number"):
        read_trace(array)
    wrapped = _write(tmp_path, "w.json", json.dumps({"version": 2, "requests": records},
                                                    indent=2))
    with pytest.raises(ValueError, match=r"^line 9: prompt_tokens must be a whole number"):
        read_trace(wrapped)
    records[1]["prompt_tokens"] = 7
    wrapped.write_text(json.dumps({"requests": records}, indent=2))
    assert read_trace(wrapped) == [TraceRequest(0.0, 100, 10), TraceRequest(1.0, 7, 10)]
    one = _write(tmp_path, "one.json", json.dumps(
        {"timestamp": 0, "input_length": 5, "output_length": 6, "hash_ids": [1, 2]}, indent=2))
    assert read_trace(one) == [TraceRequest(0.0, 5, 6)]


def test_the_bank_reads_a_held_out_file_with_its_unit_and_its_cut(tmp_path: Path) -> None:
    secs = _write(tmp_path, "mc.jsonl", "".join(
        json.dumps({"timestamp": i * 0.5, "input_length": 100, "output_length": 10}) + "\n"
        for i in range(20)))
    with pytest.raises(ValueError, match=r"--time-unit s\|ms"):
        entries(traces=[str(secs)], models=["llama8b-l4"])
    item = entries(traces=[str(secs)], models=["llama8b-l4"], time_unit="s")[0]
    assert scenario(item, ROOT).trace[-1].arrival_s == 9.5
    # A trace longer than 31 days is cut to --hours before it is checked.
    long = _write(tmp_path, "long.csv", "arrival_time,prompt_tokens,output_tokens\n"
                  "0,100,10\n60,100,10\n3000000,100,10\n")
    item = entries(traces=[str(long)], models=["llama8b-l4"], hours=0.25)[0]
    assert len(scenario(item, ROOT).trace) == 2


def test_held_out_files_of_the_same_name_are_told_apart(tmp_path: Path) -> None:
    paths = []
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        paths.append(str(_write(tmp_path / d, "trace.csv",
                                "arrival_time,prompt_tokens,output_tokens\n0,1,1\n")))
    labels = {e.label for e in entries(traces=paths, models=["llama8b-l4"])}
    assert labels == {f"{d}/trace.csv llama8b-l4 SLO x{s}" for d in "ab" for s in ("1.5", "3")}


def test_the_oracle_is_not_compared_with_itself_in_json(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, "t.csv", "arrival_time,prompt_tokens,output_tokens\n" +
                  "".join(f"{i * 5},64,32\n" for i in range(60)))
    assert run(["--trace", str(path), "--model", str(SMOL), "--pools", str(POOLS),
                "--policy", "oracle", "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["vsOracle"] == {}
