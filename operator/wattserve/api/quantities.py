"""Parsing of the string quantities used in specs (no floats in specs)."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Final

from wattserve.api.errors import SpecError

PARAMETERS_PATTERN: Final = r"^[0-9]+(\.[0-9]+)?[KMBT]$"
DECIMAL_PATTERN: Final = r"^[0-9]+(\.[0-9]+)?$"
_PARAMETERS_RE: Final = re.compile(PARAMETERS_PATTERN)
_DECIMAL_RE: Final = re.compile(DECIMAL_PATTERN)
# Longest number string the CRD admits (maxLength): keeps every value finite in planning.
MAX_NUMBER_LENGTH: Final = 32
_SUFFIX: Final[dict[str, int]] = {"K": 10**3, "M": 10**6, "B": 10**9, "T": 10**12}


def parse_parameter_count(value: object, path: str) -> int:
    """``"135M"`` → 135_000_000; ``"1.5B"`` → 1_500_000_000."""
    if not isinstance(value, str):
        raise SpecError(path, f"must be a string like '8B' or '135M', got {_kind(value)}")
    _check_length(value, path)
    if not _PARAMETERS_RE.fullmatch(value):
        raise SpecError(path, f"must look like '8B', '135M' or '1.5T', got {value!r}")
    count = int(Decimal(value[:-1]) * _SUFFIX[value[-1]])
    if count <= 0:
        raise SpecError(path, f"must be positive, got {value!r}")
    return count


def parse_decimal(value: object, path: str, *, positive: bool = False) -> float:
    """A non-negative decimal written as a string, e.g. ``"0.25"``."""
    if isinstance(value, bool) or not isinstance(value, str):
        raise SpecError(path, f"must be a decimal string like '0.5', got {_kind(value)}")
    _check_length(value, path)
    if not _DECIMAL_RE.fullmatch(value):
        raise SpecError(path, f"must be a non-negative decimal like '0.5', got {value!r}")
    try:
        number = float(Decimal(value))
    except InvalidOperation as exc:  # pragma: no cover - the regex already guards this
        raise SpecError(path, f"is not a decimal: {value!r}") from exc
    if positive and number <= 0:
        raise SpecError(path, f"must be greater than 0, got {value!r}")
    return number


def _check_length(value: str, path: str) -> None:
    if len(value) > MAX_NUMBER_LENGTH:
        raise SpecError(path, f"must be at most {MAX_NUMBER_LENGTH} characters, "
                              f"got {len(value)}")


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__
