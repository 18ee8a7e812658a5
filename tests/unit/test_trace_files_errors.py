"""Trace files whose values overflow, whose quotes stay open or whose columns cannot be
told apart are refused in one line naming the line and the column, never read wrongly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from wattserve.simulate.trace_files import read_trace

BIG = "9" * 400  # past a float's range as an integer


def _refused(path: Path, pattern: str) -> str:
    with pytest.raises(ValueError, match=pattern) as err:
        read_trace(path)
    message = str(err.value)
    assert "\n" not in message and len(message) < 300, message
    return message


@pytest.mark.parametrize(("text", "pattern"), [
    (f'{{"timestamp": 0, "prompt_tokens": {BIG}, "output_tokens": 5}}\n',
     r"^line 1: prompt_tokens must be a whole number"),
    (f'{{"timestamp": 0, "prompt_tokens": 1, "output_tokens": 5}}\n'
     f'{{"timestamp": {BIG}, "prompt_tokens": 1, "output_tokens": 5}}\n',
     r"^line 2: timestamp is out of range, got 9999"),
    ('{"timestamp": 0, "prompt_tokens": 1, "output_tokens": 5}\n'
     f'{{"timestamp": {"9" * 5000}, "prompt_tokens": 1, "output_tokens": 5}}\n',
     r"^line 2: a number with more digits than can be read$"),
])
def test_json_integers_past_a_float_are_refused_by_line_and_column(
        tmp_path: Path, text: str, pattern: str) -> None:
    path = tmp_path / "big.jsonl"
    path.write_text(text)
    _refused(path, pattern)


def test_a_json_array_with_a_number_too_long_to_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    path.write_text(json.dumps([{"time": 0, "isl": 1, "osl": 1}])[:-1]
                    + ', {"time": ' + "9" * 5000 + ', "isl": 1, "osl": 1}]')
    _refused(path, r"^a number with more digits than can be read$")


@pytest.mark.parametrize("stamp", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_date_times_outside_the_years_in_utc_are_refused_by_line(tmp_path: Path,
                                                                  stamp: str) -> None:
    path = tmp_path / "year.csv"
    path.write_text(f"timestamp,prompt_tokens,output_tokens\n2000-01-01T00:00:00Z,1,1\n"
                    f"{stamp},10,5\n")
    _refused(path, rf"^line 3: timestamp {stamp[:10]}.* is out of range in UTC")


@pytest.mark.parametrize(("text", "line"), [
    ('timestamp,prompt_tokens,output_tokens\n0,"10,5\n1,10,5\n', 2),  # first row
    ('timestamp,prompt_tokens,output_tokens\n0,"10,5\n', 2),  # open to the end of the file
    ('\n\ntimestamp,prompt_tokens,output_tokens\n0,"10,5\n1,10,5\n', 4),  # blank lines
    ('timestamp,prompt_tokens,output_tokens\n0,10,5\n1,"10,5\n2,10,5\n', 3),
    ('timestamp,"prompt_tokens,output_tokens\n0,10,5\n', 1),  # in the header
])
def test_an_unclosed_quote_is_named_on_the_line_it_opens(tmp_path: Path, text: str,
                                                         line: int) -> None:
    path = tmp_path / "quote.csv"
    path.write_text(text)
    _refused(path, rf"^line {line}: a quoted field opened here is not closed on its line")


@pytest.mark.parametrize(("name", "text", "first", "second"), [
    ("case.csv", "timestamp,Timestamp,prompt_tokens,output_tokens\n0,99999,10,5\n1,5,10,5\n",
     "timestamp", "Timestamp"),
    ("twice.csv", "time,isl,osl,isl\n0,1,1,2\n", "isl", "isl"),
    ("spaced.csv", "time,prompt tokens,prompt_tokens,osl\n0,1,2,1\n",
     "prompt tokens", "prompt_tokens"),
    ("keys.jsonl", '{"time": 0, "Time": 9, "isl": 1, "osl": 1}\n', "time", "Time"),
])
def test_columns_that_differ_only_in_case_are_refused_naming_both(
        tmp_path: Path, name: str, text: str, first: str, second: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    message = _refused(path, "the same column")
    assert f"{first!r} and {second!r}" in message


def test_columns_read_by_no_field_may_repeat(tmp_path: Path) -> None:
    path = tmp_path / "notes.csv"
    path.write_text("time,isl,osl,note,Note\n0,1,2,a,b\n")
    assert len(read_trace(path)) == 1


def test_a_line_without_end_is_refused_not_read_into_memory(tmp_path: Path) -> None:
    """/dev/zero (or any endless first line) filled the memory before."""
    from wattserve.simulate.trace_rows import MAX_LINE

    path = tmp_path / "endless.csv"
    path.write_text("x" * (MAX_LINE + 10))
    _refused(path, r"^line 1: longer than 16 MiB")
    path.write_text("timestamp,prompt_tokens,output_tokens\n0,1,1\n" + "1" * (MAX_LINE + 10))
    _refused(path, r"^line 3: longer than 16 MiB")


def test_a_wrapper_object_on_one_line_is_read_like_a_pretty_printed_one(tmp_path: Path
                                                                       ) -> None:
    """json.dump's default output: taken as one JSON-lines record (no time column) before."""
    records = [{"timestamp": t, "prompt_tokens": 5, "output_tokens": 3} for t in (0, 2)]
    path = tmp_path / "compact.json"
    path.write_text(json.dumps({"requests": records}))
    assert len(read_trace(path)) == 2


def test_the_records_are_the_top_level_array_not_a_nested_one_of_the_same_name(
        tmp_path: Path) -> None:
    """A nested "requests" key written first was replayed before (1 request, not 2)."""
    nested = {"meta": {"requests": [{"timestamp": 0, "prompt_tokens": 1900,
                                     "output_tokens": 5}]},
              "requests": [{"timestamp": t, "prompt_tokens": 5, "output_tokens": 5}
                           for t in (0, 100)]}
    path = tmp_path / "nested.json"
    path.write_text(json.dumps(nested, indent=1))
    trace = read_trace(path)
    assert [r.prompt_tokens for r in trace] == [5, 5]
