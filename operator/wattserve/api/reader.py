"""A strict reader over one mapping of a spec, with field-precise errors."""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import StrEnum
from typing import TypeVar

from wattserve.api.errors import SpecError
from wattserve.api.quantities import _kind, parse_decimal

E = TypeVar("E", bound=StrEnum)
_MISSING = object()


class Fields:
    """Reads typed fields of one mapping; unknown keys are errors (``strict``)."""

    def __init__(self, value: object, path: str, *, allowed: frozenset[str], strict: bool = True):
        if value is None:
            value = {}
        if not isinstance(value, Mapping):
            raise SpecError(path, f"must be a mapping, got {_kind(value)}")
        self._data: Mapping[str, object] = value
        self.path = path
        if strict:
            for key in value:
                if key not in allowed:
                    known = ", ".join(sorted(allowed))
                    raise SpecError(self.at(str(key)), f"unknown field (known fields: {known})")

    def at(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def has(self, key: str) -> bool:
        return self._data.get(key) is not None

    def raw(self, key: str) -> object:
        return self._data.get(key)

    def _get(self, key: str, required: bool) -> object:
        value = self._data.get(key, _MISSING)
        if value is _MISSING or value is None:
            if required:
                raise SpecError(self.at(key), "is required")
            return _MISSING
        return value

    def string(self, key: str, *, pattern: str | None = None, required: bool = False,
               default: str | None = None, max_length: int | None = None,
               allow_empty: bool = False) -> str | None:
        value = self._get(key, required)
        if value is _MISSING:
            return default
        if not isinstance(value, str):
            raise SpecError(self.at(key), f"must be a string, got {_kind(value)}")
        if not value and not allow_empty:
            raise SpecError(self.at(key), "must not be empty")
        if max_length is not None and len(value) > max_length:
            raise SpecError(self.at(key), f"must be at most {max_length} characters, "
                                          f"got {len(value)}")
        # fullmatch: `$` alone would accept a trailing newline, which the API server refuses
        if pattern is not None and not re.fullmatch(pattern, value):
            raise SpecError(self.at(key), f"must match {pattern}, got {_short(value)}")
        return value

    def req_string(self, key: str, *, pattern: str | None = None,
                   max_length: int | None = None) -> str:
        value = self.string(key, pattern=pattern, required=True, max_length=max_length)
        assert value is not None
        return value

    def integer(self, key: str, *, minimum: int | None = None, maximum: int | None = None,
                required: bool = False, default: int | None = None) -> int | None:
        value = self._get(key, required)
        if value is _MISSING:
            return default
        # JSON has one number type: the API server takes 3000.0 for an integer field (and
        # kubectl sends YAML's 3e3 as 3000), so a whole float is that integer here too.
        if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise SpecError(self.at(key), f"must be an integer, got {_kind(value)}")
        if not -(2**63) <= value < 2**63:
            raise SpecError(self.at(key), f"must fit in 64 bits, got {_short(str(value))}")
        if minimum is not None and value < minimum:
            raise SpecError(self.at(key), f"must be >= {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise SpecError(self.at(key), f"must be <= {maximum}, got {value}")
        return value

    def req_integer(self, key: str, *, minimum: int | None = None,
                    maximum: int | None = None) -> int:
        value = self.integer(key, minimum=minimum, maximum=maximum, required=True)
        assert value is not None
        return value

    def int_default(self, key: str, default: int, *, minimum: int | None = None,
                    maximum: int | None = None) -> int:
        value = self.integer(key, minimum=minimum, maximum=maximum, default=default)
        assert value is not None
        return value

    def decimal(self, key: str, *, positive: bool = False, required: bool = False) -> float | None:
        value = self._get(key, required)
        if value is _MISSING:
            return None
        return parse_decimal(value, self.at(key), positive=positive)

    def req_decimal(self, key: str, *, positive: bool = False) -> float:
        value = self.decimal(key, positive=positive, required=True)
        assert value is not None
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self._get(key, False)
        if value is _MISSING:
            return default
        if not isinstance(value, bool):
            raise SpecError(self.at(key), f"must be true or false, got {_kind(value)}")
        return value

    def enum(self, key: str, kind: type[E], default: E) -> E:
        value = self._get(key, False)
        if value is _MISSING:
            return default
        allowed = [member.value for member in kind]
        if not isinstance(value, str) or value not in allowed:
            raise SpecError(self.at(key), f"must be one of: {', '.join(allowed)}; got {value!r}")
        return kind(value)

    def child(self, key: str, allowed: frozenset[str], *, required: bool = False) -> Fields:
        value = self._get(key, required)
        return Fields(None if value is _MISSING else value, self.at(key), allowed=allowed)


def _short(value: str, limit: int = 80) -> str:
    return repr(value) if len(value) <= limit else repr(value[:limit]) + "..."
