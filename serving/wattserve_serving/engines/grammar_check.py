"""What a JSON schema's llama.cpp grammar must not hold, checked before a sampler runs it.

llama.cpp's grammar sampler throws a C++ exception through ctypes, which ends the whole
process (``std::terminate``), when the token it drew leaves no way on: "Unexpected empty
grammar stack after accepting piece". That happens when the grammar asks for a character
no token can give, and llama-cpp-python's converter writes such grammars from ordinary
schemas:

* U+0000: a ``const``/``enum`` string or a property name holding it becomes the grammar
  escape ``\\u0000`` (the converter writes the JSON text of the value into a grammar string,
  whose escapes llama.cpp then reads as characters), a pattern's ``\\x00`` stays ``\\x00``;
  llama.cpp reads a piece as a C string, so code point 0 is where every piece ends and no
  token matches it. A raw NUL in the grammar's text would cut it short there as well.
* a code point past U+10FFFF (a pattern's ``\\U0FFFFFFF``), and a character class that
  holds no valid code point (``[\\x00]``, ``[\\uD800-\\uDFFF]``, ``[]``).
* UTF-16 surrogates: a character past U+FFFF in a ``const``/``enum`` string or a property
  name becomes the JSON escapes of its surrogate pair (``\\ud83c\\udf89`` for 🎉), which
  the grammar reads as two code points that valid UTF-8 cannot hold (the model could only
  answer with bytes that are not UTF-8). A pair is written back as its character here
  (``\\U0001F389``), so the answer is the character; a lone surrogate is refused.

(Since `llamacpp_grammar` escapes the backslash of the JSON text the converter writes for a
``const``/``enum`` value or property name, those are literal text and reach none of the
above; the checks stay for what a grammar holds otherwise, patterns first.)

Raw control characters U+0001..U+001F in a grammar string (the same converter writes a
``const`` newline as a raw newline) are written as their JSON escapes instead, so the answer
is JSON and holds the value asked for, as strings elsewhere never hold raw control
characters. A vocabulary that cannot spell some character at all (no byte tokens) is not
checked: llama.cpp's byte-level vocabularies, SmolLM2's among them, spell every code point.
"""

from __future__ import annotations

import json
from typing import Any

MAX_CODE_POINT = 0x10FFFF
_SURROGATES = (0xD800, 0xDFFF)
_SIMPLE_ESCAPES = {"t": 0x09, "r": 0x0D, "n": 0x0A, "\\": 0x5C, '"': 0x22, "[": 0x5B,
                   "]": 0x5D}
_HEX_DIGITS = {"x": 2, "u": 4, "U": 8}
_NUL = "U+0000 (NUL), which llama.cpp cannot generate"


def nul_at(schema: Any) -> str | None:
    """The JSON pointer of the first string or property name in ``schema`` that holds
    U+0000 (None: none does; a NUL in the pointer is written ``\\u0000``); walked with a
    stack of its own."""
    stack: list[tuple[str, Any]] = [("", schema)]
    while stack:
        where, node = stack.pop()
        if isinstance(node, str) and "\x00" in node:
            return where or "/"
        if isinstance(node, dict):
            for key, value in reversed(list(node.items())):
                path = f"{where}/{_pointer(str(key))}"
                if "\x00" in str(key):
                    return path.replace("\x00", "\\u0000")
                stack.append((path, value))
        elif isinstance(node, list):
            stack.extend((f"{where}/{i}", v) for i, v in reversed(list(enumerate(node))))
    return None


def misshapen(schema: Any) -> str | None:
    """Where ``schema`` gives a keyword a value of the wrong kind (what llama-cpp-python's
    converter fails on with an AttributeError or a TypeError), as a sentence; None: nowhere
    that is checked here."""
    stack: list[tuple[str, Any]] = [("", schema)]
    while stack:
        where, node = stack.pop()
        if isinstance(node, bool):
            continue
        if not isinstance(node, dict):
            return f"the sub-schema at {where or '/'} is not an object"
        children: list[tuple[str, Any]] = []
        for key, value in node.items():
            path = f"{where}/{_pointer(str(key))}"
            if key in ("properties", "$defs", "definitions", "patternProperties",
                       "dependentSchemas"):
                if not isinstance(value, dict):
                    return f"'{key}' at {path} must be an object of schemas"
                children += [(f"{path}/{_pointer(str(k))}", v) for k, v in value.items()]
            elif key in ("anyOf", "oneOf", "allOf", "prefixItems"):
                if not isinstance(value, list):
                    return f"'{key}' at {path} must be an array of schemas"
                children += [(f"{path}/{i}", v) for i, v in enumerate(value)]
            elif key in ("items", "additionalProperties", "not", "contains", "if", "then",
                         "else", "propertyNames", "additionalItems", "unevaluatedItems",
                         "unevaluatedProperties"):
                if isinstance(value, list) and key == "items":
                    children += [(f"{path}/{i}", v) for i, v in enumerate(value)]
                elif isinstance(value, (dict, bool)):
                    children.append((path, value))
                else:
                    return f"'{key}' at {path} must be a schema (an object or a boolean)"
            elif key in ("pattern", "format", "$ref") and not isinstance(value, str):
                return f"'{key}' at {path} must be a string"
            elif key == "type" and not (isinstance(value, str) or (
                    isinstance(value, list) and all(isinstance(t, str) for t in value))):
                return f"'type' at {path} must be a string or an array of strings"
            elif key == "required" and not (
                    isinstance(value, list) and all(isinstance(r, str) for r in value)):
                return f"'required' at {path} must be an array of strings"
            elif key == "enum" and not isinstance(value, list):
                return f"'enum' at {path} must be an array"
        stack.extend(reversed(children))
    return None


def checked_grammar(grammar: str) -> str:
    """``grammar`` (GBNF) with surrogate pairs written as their characters and raw control
    characters in its strings as JSON escapes; ValueError when it holds a character no
    token can give (see the module's docstring)."""
    if "\x00" in grammar:
        raise ValueError(f"the JSON schema's grammar holds {_NUL}")
    out: list[str] = []
    i, n = 0, len(grammar)
    while i < n:
        c = grammar[i]
        if c == "#":  # a comment, to the end of its line
            end = grammar.find("\n", i)
            end = n if end < 0 else end
            out.append(grammar[i:end])
            i = end
        elif c == '"':
            i = _literal(grammar, i + 1, out)
        elif c == "[":
            i = _char_class(grammar, i + 1, out)
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _literal(text: str, i: int, out: list[str]) -> int:
    """Copies the grammar string starting after its quote at ``i`` to ``out``; where it ends."""
    chars: list[tuple[int, str]] = []  # (code point, as written)
    while True:
        if i >= len(text):
            raise ValueError("the JSON schema's grammar has an unclosed string")
        if text[i] == '"':
            break
        point, end = _char(text, i)
        chars.append((point, text[i:end]))
        i = end
    written = ['"']
    k = 0
    while k < len(chars):
        point, raw = chars[k]
        low = chars[k + 1][0] if k + 1 < len(chars) else -1
        if 0xD800 <= point <= 0xDBFF and 0xDC00 <= low <= 0xDFFF:
            written.append(f"\\U{0x10000 + ((point - 0xD800) << 10) + (low - 0xDC00):08X}")
            k += 2
            continue
        _check_point(point)
        if point < 0x20:
            escape = json.dumps(chr(point))[1:-1]  # "\\n", "\\u0001": JSON's own
            written.append(escape.replace("\\", "\\\\"))
        else:
            written.append(raw)
        k += 1
    out.append("".join(written) + '"')
    return i + 1


def _char_class(text: str, i: int, out: list[str]) -> int:
    """Copies the character class starting after its ``[`` at ``i`` to ``out``; ValueError
    when it matches no valid code point; where it ends."""
    start = i
    negated = text.startswith("^", i)
    i += negated
    ranges: list[tuple[int, int]] = []
    while True:
        if i >= len(text):
            raise ValueError("the JSON schema's grammar has an unclosed character class")
        if text[i] == "]":
            break
        low, i = _char(text, i)
        high = low
        if text.startswith("-", i) and i + 1 < len(text) and text[i + 1] != "]":
            high, i = _char(text, i + 1)
        ranges.append((low, high))
    if not _matches_some(ranges, negated):
        raise ValueError(f"the JSON schema's grammar has a character class "
                         f"[{text[start:i]}] that matches no character a model can write")
    out.append("[" + text[start:i] + "]")
    return i + 1


def _char(text: str, i: int) -> tuple[int, int]:
    """One character of a grammar string or class at ``i`` (as llama.cpp's parser reads
    it): its code point and where the next one starts."""
    if text[i] != "\\":
        return ord(text[i]), i + 1
    kind = text[i + 1: i + 2]
    if kind in _HEX_DIGITS:
        digits = text[i + 2: i + 2 + _HEX_DIGITS[kind]]
        if len(digits) != _HEX_DIGITS[kind] or any(d not in "0123456789abcdefABCDEF"
                                                   for d in digits):
            raise ValueError("the JSON schema's grammar has a malformed escape")
        return int(digits, 16), i + 2 + len(digits)
    if kind in _SIMPLE_ESCAPES:
        return _SIMPLE_ESCAPES[kind], i + 2
    raise ValueError("the JSON schema's grammar has an unknown escape")


def _check_point(point: int) -> None:
    if point == 0:
        raise ValueError(f"the JSON schema's grammar holds {_NUL}")
    if point > MAX_CODE_POINT:
        raise ValueError(f"the JSON schema's grammar holds code point {point:#x}, past "
                         f"U+10FFFF")
    if _SURROGATES[0] <= point <= _SURROGATES[1]:
        raise ValueError(f"the JSON schema's grammar holds a lone surrogate U+{point:04X}, "
                         "which UTF-8 cannot")


def _matches_some(ranges: list[tuple[int, int]], negated: bool) -> bool:
    """Whether a class of these ranges matches some code point 1..U+10FFFF that is not a
    surrogate (what a model's UTF-8 can give)."""
    valid = [(1, _SURROGATES[0] - 1), (_SURROGATES[1] + 1, MAX_CODE_POINT)]
    spans = sorted((lo, hi) for lo, hi in ranges if lo <= hi)
    if not negated:
        return any(lo <= v_hi and hi >= v_lo for lo, hi in spans for v_lo, v_hi in valid)
    for v_lo, v_hi in valid:  # a valid code point outside every range?
        point = v_lo
        for lo, hi in spans:
            if lo <= point <= hi:
                point = hi + 1
        if point <= v_hi:
            return True
    return False


def _pointer(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")
