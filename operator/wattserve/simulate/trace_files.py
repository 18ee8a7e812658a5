"""Request traces from files of any common layout, one reader for all of them.

A trace is one request per row: when it arrived, its prompt tokens, its output tokens.
Public traces spell these differently, so the reader finds the three columns by name:

* Azure LLM inference 2023/2024 CSV: ``TIMESTAMP`` (a date-time, 7 fraction digits,
  optionally ``+00:00``), ``ContextTokens``, ``GeneratedTokens``;
* Mooncake (FAST'25) JSON lines: ``timestamp`` (ms), ``input_length``, ``output_length``;
* BurstGPT CSV: ``Timestamp`` (s), ``Request tokens``, ``Response tokens``;
* Splitwise CSV: ``arrival_timestamp`` (s), ``prompt_size``, ``token_size``; Vidur:
  ``arrived_at`` (s), ``num_prefill_tokens``, ``num_decode_tokens``;
* any CSV/TSV, JSON lines, JSON array (or an object holding one) using the names in
  :data:`COLUMNS`; any of them gzip-compressed, from a file or a pipe
  (:mod:`wattserve.simulate.trace_rows`).

Arrival times are date-times or numbers. A number's unit comes from ``time_unit`` when
given; else from the column's name (``_ms``, ``_us``, ``_s``); else Mooncake's ``timestamp``
beside ``input_length`` is ms (from the trace's start: a first time like epoch seconds
is refused); else an epoch above 1e11 is ms, above 1e14 us and above 1e17 ns; else
seconds; a unit given for date-times is refused. Zero token counts are replayed as 1 and
counted (:class:`TraceFile`: BurstGPT's failed requests have 0 response tokens).
Date-times must all carry a time zone or none. Times are taken relative to the earliest
row and sorted. Every refusal is a ``ValueError`` naming the line (of the file, blank
lines counted; for a record over several lines, where it starts) and the column.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from wattserve.simulate.trace import (
    MAX_REQUESTS,
    MAX_SPAN_S,
    MAX_TOKENS,
    TraceRequest,
    finite_positive,
)
from wattserve.simulate.trace_rows import rows

# Normalised column names (lower case, runs of non-alphanumerics as "_") for each field.
COLUMNS: dict[str, tuple[str, ...]] = {
    "time": ("timestamp", "timestamp_ms", "timestamp_s", "timestamp_us", "arrival_time",
             "arrival_time_s", "arrival_time_ms", "arrival_s", "arrival_ms", "arrival",
             "time", "time_s", "time_ms", "start_time", "request_time", "created", "ts",
             "arrival_timestamp", "arrived_at"),
    "prompt": ("contexttokens", "context_tokens", "input_length", "input_len", "input_tokens",
               "prompt_tokens", "prompt_len", "prompt_length", "request_tokens",
               "num_input_tokens", "num_prompt_tokens", "in_tokens", "isl", "prompt_size",
               "num_prefill_tokens"),
    "output": ("generatedtokens", "generated_tokens", "output_length", "output_len",
               "output_tokens", "completion_tokens", "response_tokens", "gen_tokens",
               "num_output_tokens", "decode_tokens", "out_tokens", "osl", "token_size",
               "num_decode_tokens"),
}
TIME_UNITS = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}  # ticks per second
MAX_ROWS = 4 * MAX_REQUESTS  # rows read (the span kept may be a part of them)
_FRACTION = re.compile(r"(\.\d{6})\d+")
_SHOWN = 60  # characters of a refused value quoted in a message


def _show(raw: object) -> str:
    """A refused value as quoted in one line: ``None`` as missing, long ones cut."""
    if raw is None:
        return "nothing (missing)"
    text = repr(raw)
    return text if len(text) <= _SHOWN else f"{text[:_SHOWN]}... ({len(text)} characters)"


def _norm(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", name.strip().lower()).strip("_")


def _same_names(names: list[str]) -> None:
    """Refuse two columns that this reader cannot tell apart (``timestamp`` and
    ``Timestamp``, or one name twice) when they name a field it reads."""
    seen: dict[str, str] = {}
    known = {alias for aliases in COLUMNS.values() for alias in aliases}
    for name in names:
        key = _norm(name)
        if key in known and key in seen:
            raise ValueError(f"columns {seen[key]!r} and {name!r} are the same column to "
                             "this reader (case and punctuation aside): keep one")
        seen.setdefault(key, name)


def _pick(names: list[str], field: str) -> str:
    _same_names(names)
    by_norm = {_norm(n): n for n in names}
    for alias in COLUMNS[field]:
        if alias in by_norm:
            return by_norm[alias]
    shown = ", ".join(repr(n) for n in names[:12]) or "none"
    raise ValueError(f"no {field} column: expected one of {', '.join(COLUMNS[field])}; "
                     f"the file has {shown}")


def _tokens(row: Mapping[str, Any], col: str, line: int) -> int:
    raw = row.get(col)
    try:
        value = float(raw) if isinstance(raw, (int, float, str)) and not isinstance(
            raw, bool) and raw != "" else math.nan
    except (ValueError, OverflowError):  # OverflowError: an int past a float's range
        value = math.nan
    if not (math.isfinite(value) and value == int(value) and 0 <= value <= MAX_TOKENS):
        raise ValueError(f"line {line}: {col} must be a whole number 0..{MAX_TOKENS}, "
                         f"got {_show(raw)}")
    return int(value)


def _moment(raw: object, col: str, line: int) -> float | datetime:
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        try:
            value = float(raw)
        except OverflowError:  # a JSON integer past a float's range
            raise ValueError(f"line {line}: {col} is out of range, got {_show(raw)}") from None
    elif isinstance(raw, str):
        text = raw.strip()
        try:
            value = float(text)
        except ValueError:
            try:
                stamp = datetime.fromisoformat(
                    _FRACTION.sub(r"\1", text).upper().replace("Z", "+00:00"))
            except ValueError:
                raise ValueError(f"line {line}: {col} is neither a number nor a date-time: "
                                 f"{_show(raw)}") from None
            return stamp
    else:
        raise ValueError(f"line {line}: {col} is neither a number nor a date-time: "
                         f"{_show(raw)}")
    if not math.isfinite(value):
        raise ValueError(f"line {line}: {col} must be finite, got {_show(raw)}")
    return value


def _mooncake(col: str, prompt_col: str) -> bool:
    return _norm(col) == "timestamp" and _norm(prompt_col) == "input_length"


def _whole_milliseconds(raw: list[tuple[int, float | datetime, int, int]], col: str) -> None:
    """Mooncake's timestamps are whole milliseconds from the trace's start; a fraction, or a
    first time like an epoch in seconds (1e9..1e11: 11 days to 3 years "in" as ms), says
    the file only borrows its column names: refused rather than read 1000x too fast."""
    first = min(float(m) for _, m, _, _ in raw if isinstance(m, float))
    if 1e9 <= first < 1e11:
        line = next(ln for ln, m, _, _ in raw if m == first)
        raise ValueError(f"line {line}: {col} {first:.0f} reads like an epoch in seconds, but "
                         "Mooncake's timestamps (beside input_length) are milliseconds from "
                         "the trace's start: say the unit (--time-unit s|ms)")
    for line, m, _, _ in raw:
        if isinstance(m, float) and not m.is_integer():
            raise ValueError(f"line {line}: {col} {m:g} has a fraction, but Mooncake's "
                             "timestamps (beside input_length) are whole milliseconds: "
                             "say the unit (--time-unit s|ms)")


def _check_unit(time_unit: str | None) -> None:
    if time_unit is not None and time_unit not in TIME_UNITS:
        raise ValueError(f"time unit must be one of {', '.join(TIME_UNITS)}, "
                         f"got {time_unit!r}")


def _unit(col: str, prompt_col: str, first: float, time_unit: str | None) -> float:
    if time_unit is not None:
        return TIME_UNITS[time_unit]
    name = _norm(col)
    for suffix, ticks in (("_ms", 1e3), ("_us", 1e6), ("_s", 1.0)):
        if name.endswith(suffix):
            return ticks
    if _mooncake(col, prompt_col):
        return 1e3  # Mooncake's schema
    return 1e9 if abs(first) > 1e17 else 1e6 if abs(first) > 1e14 \
        else 1e3 if abs(first) > 1e11 else 1.0


@dataclass(frozen=True)
class TraceFile:
    """A trace read from a file, and what the reading changed."""

    requests: list[TraceRequest]
    zero_outputs: int  # rows with 0 output tokens (BurstGPT's failed requests), replayed as 1
    zero_prompts: int  # rows with an empty prompt, replayed as 1 token

    def note(self) -> str | None:
        """One line on the rows replayed as 1-token requests, or None."""
        if not (self.zero_outputs or self.zero_prompts):
            return None
        parts = [f"{n} with 0 {what} tokens" for n, what in
                 ((self.zero_outputs, "output"), (self.zero_prompts, "prompt")) if n]
        return (f"{' and '.join(parts)} of {len(self.requests)} requests replayed with 1 "
                "(BurstGPT marks failed requests with 0 response tokens)")


def read_trace(path: str | Path, *, rate_scale: float = 1.0, length_scale: float = 1.0,
               prompt_scale: float | None = None, limit_s: float | None = None,
               time_unit: str | None = None) -> list[TraceRequest]:
    """The requests of :func:`read_trace_file`."""
    return read_trace_file(path, rate_scale=rate_scale, length_scale=length_scale,
                           prompt_scale=prompt_scale, limit_s=limit_s,
                           time_unit=time_unit).requests


def read_trace_file(path: str | Path, *, rate_scale: float = 1.0, length_scale: float = 1.0,
                    prompt_scale: float | None = None, limit_s: float | None = None,
                    time_unit: str | None = None,
                    span_hint: str = "replay a part (--trace-hours) or compress it "
                                     "(--rate-scale)") -> TraceFile:
    """Read a trace file (see the module docstring), relative to its earliest request.

    ``rate_scale`` > 1 compresses inter-arrival times (more requests/s, same shape);
    ``length_scale`` multiplies both token counts (``prompt_scale`` overrides it for the
    prompt); counts are rounded and kept >= 1; ``limit_s`` keeps the first seconds;
    ``span_hint`` ends the refusal of a trace longer than 31 days (the caller's flags).
    """
    p_scale = length_scale if prompt_scale is None else prompt_scale
    for name, value in (("rate scale", rate_scale), ("length scale", length_scale),
                        ("prompt scale", p_scale)):
        finite_positive(name, value, 1e6)
    _check_unit(time_unit)
    path = Path(path)
    cols: tuple[str, str, str] | None = None
    raw: list[tuple[int, float | datetime, int, int]] = []
    for line, row in rows(path, _same_names):
        if cols is None:
            names = [str(k) for k in row if k is not None]
            cols = (_pick(names, "time"), _pick(names, "prompt"), _pick(names, "output"))
        if len(raw) >= MAX_ROWS:
            raise ValueError(f"line {line}: more than {MAX_ROWS} rows; cut the file")
        t_col, p_col, o_col = cols
        raw.append((line, _moment(row.get(t_col), t_col, line), _tokens(row, p_col, line),
                    _tokens(row, o_col, line)))
    if cols is None:
        return TraceFile([], 0, 0)
    _one_kind(raw, cols[0])
    if isinstance(raw[0][1], datetime):
        if time_unit is not None:
            raise ValueError(f"{cols[0]} holds date-times, which carry their own unit: leave "
                             f"the time unit ({time_unit}) out")
        stamps = _utc(raw, cols[0])
        t0d = min(stamps)
        rel = [(line, (m - t0d).total_seconds(), p, o)
               for (line, _m, p, o), m in zip(raw, stamps, strict=True)]
    else:
        nums = [float(m) for _, m, _, _ in raw if isinstance(m, float)]
        ticks = _unit(cols[0], cols[1], nums[0], time_unit)
        if time_unit is None and _mooncake(cols[0], cols[1]):
            _whole_milliseconds(raw, cols[0])
        t0 = min(nums)
        rel = [(line, (float(m) - t0) / ticks if isinstance(m, float) else 0.0, p, o)
               for line, m, p, o in raw]
    out: list[TraceRequest] = []
    zero_out = zero_prompt = 0
    for line, t, prompt, gen in rel:
        t /= rate_scale
        if limit_s is not None and t > limit_s:
            continue
        if t > MAX_SPAN_S:
            raise ValueError(f"line {line}: {cols[0]} is {t:.0f} s after the first request; "
                             f"a trace must span at most {MAX_SPAN_S:.0f} s (31 days); "
                             f"{span_hint}")
        if len(out) >= MAX_REQUESTS:
            raise ValueError(f"line {line}: more than {MAX_REQUESTS} requests in the span "
                             "simulated; keep fewer hours")
        zero_out += gen == 0
        zero_prompt += prompt == 0
        out.append(TraceRequest(t, max(1, min(MAX_TOKENS, round(prompt * p_scale))),
                                max(1, min(MAX_TOKENS, round(gen * length_scale)))))
    out.sort(key=lambda r: r.arrival_s)
    return TraceFile(out, zero_out, zero_prompt)


def _utc(raw: list[tuple[int, float | datetime, int, int]], col: str) -> list[datetime]:
    """Each date-time in UTC, without its zone (naive ones as they are)."""
    out: list[datetime] = []
    for line, m, _, _ in raw:
        if not isinstance(m, datetime):
            continue
        try:
            out.append(m.astimezone(UTC).replace(tzinfo=None) if m.tzinfo else m)
        except OverflowError:  # 0001-01-01T00:00:00+01:00 is before year 1 in UTC
            raise ValueError(f"line {line}: {col} {m.isoformat()} is out of range in UTC "
                             "(before year 1 or after 9999)") from None
    return out


def _one_kind(raw: list[tuple[int, float | datetime, int, int]], col: str) -> None:
    """All numbers, or all date-times with a time zone, or all without one."""
    def kind(m: float | datetime) -> str:
        if not isinstance(m, datetime):
            return "a number"
        return "a date-time with a time zone" if m.tzinfo else "a date-time without a zone"

    first = kind(raw[0][1])
    for line, m, _, _ in raw:
        this = kind(m)
        if this == first:
            continue
        what = "mixes numbers and date-times" if "number" in (this + first) else \
            "mixes date-times with and without a time zone"
        raise ValueError(f"line {line}: {col} {what} (this row's is {this}, the first "
                         f"row's {first})")
