"""Bounds on a request's JSON schema (``response_format``, ``tools``), checked before any
grammar converter sees it.

llama-cpp-python's converter writes each repetition out: ``maxItems: N`` becomes N nested
optional groups, ``minLength: N`` N copies of the character rule, a regular expression's
``{m,n}`` the same. The grammar's size cap (``MAX_GRAMMAR_CHARS``) is only checked on the
finished text, so ``maxItems: 30000000`` grew the process by 1.7 GB before that 400. Here
the schema is walked first (``$defs``, local ``$ref`` pointers, ``items``, ``prefixItems``,
``properties``, ``anyOf``/``oneOf``/``allOf``, ``additionalProperties``, any other
sub-schema) and refused when its grammar cannot fit the cap anyway:

* one bound above ``MAX_REPEAT``: every repetition step costs at least ``STEP_CHARS``
  characters ("(char )?", a string's shortest), so no larger bound fits;
* the product of the bounds along one nested path above ``MAX_NESTED``: this converter
  writes a nested array as rules of its own, so their text adds, but a converter or a
  grammar engine that inlines repetitions (llama.cpp's parser expands ``{m,n}`` into rules)
  multiplies them, and an answer the product forces (``minItems`` inside ``minItems``)
  could not be written out within the cap's size either;
* the characters the repetitions write at least (each step: ``STEP_CHARS``, plus the
  repeated rule's name, which the converter derives from the property names on its path,
  so a long property name repeated N times is counted as such) above the cap.

A bound that is not a non-negative integer (``-1``, ``2.5``, ``-Infinity``, which Python's
JSON parser reads) is refused too, and so is a schema nested more than ``MAX_DEPTH``
levels: the walk keeps a stack of its own, so no depth the body parser lets through
overflows it, and what comes after it (tools' ``$ref`` rewriting, the converter) only
ever sees schemas this shallow.
"""

from __future__ import annotations

import re
from typing import Any

MAX_GRAMMAR_CHARS = 100_000  # a JSON schema's grammar; a few KB for the schemas in use
STEP_CHARS = 8  # fewest characters one repetition step writes: "(char )?"
MAX_REPEAT = MAX_GRAMMAR_CHARS // STEP_CHARS  # 12,500: any one bound
MAX_NESTED = MAX_GRAMMAR_CHARS  # the product of the bounds on one nested path
MAX_PATTERN_REPEAT = MAX_GRAMMAR_CHARS  # a regex {m,n}: a literal step writes >= 1 char
MAX_NODES = 100_000  # sub-schemas walked ($ref targets once per use); more: refused
# Objects and arrays nested in one schema, $ref pointers followed counting as a level each.
# The body parser refuses nesting past Python's recursion limit (~1000); a schema nested
# that deep got past it into recursive walks (the tools' $ref rewriting, the grammar
# converter, which recurses several frames per level) and overflowed them. Real schemas
# nest a few levels; an answer nested deeper than this is not one a model writes.
MAX_DEPTH = 100
BOUNDS = ("minItems", "maxItems", "minLength", "maxLength", "minProperties",
          "maxProperties", "minContains", "maxContains")
_WRITTEN = {"minItems", "maxItems", "minLength", "maxLength"}  # the converter expands these
_DATA = frozenset({"const", "enum", "default", "examples"})  # values, not schemas
_MAPS = frozenset({"properties", "$defs", "definitions", "patternProperties",
                   "dependentSchemas"})  # name -> schema; the name joins the rule's name
_SHORT_ITEMS = frozenset({"type", "description", "title", "format"})  # a primitive's rule
_QUANTIFIER = re.compile(r"\{\s*(\d*)\s*(?:,\s*(\d*)\s*)?\}")


def check_schema(schema: Any) -> None:
    """ValueError saying which bound is too large, before the schema is converted."""
    _Walk(schema).walk()


class _Walk:
    """The schema walked depth first with a stack of its own (no Python recursion, so no
    nesting the body parser accepts overflows it); ``$ref`` targets are walked where they
    are used, and their depth counts as nesting too."""

    def __init__(self, root: Any) -> None:
        self.root = root
        self.nodes = 0
        self.chars = 0  # characters the repetitions write, at least

    def walk(self) -> None:
        # node, product of the bounds above it, its rule name's length, its depth, and the
        # $ref pointers being followed on its path (a pointer met again stops there)
        stack: list[tuple[Any, int, int, int, tuple[str, ...]]] = [(self.root, 1, 0, 1, ())]
        while stack:
            node, product, name, depth, following = stack.pop()
            self.nodes += 1
            if self.nodes > MAX_NODES:
                raise ValueError(f"the JSON schema has more than {MAX_NODES} sub-schemas "
                                 "(counting each use of a $ref)")
            if isinstance(node, (dict, list)) and depth > MAX_DEPTH:
                raise ValueError(f"the JSON schema is nested more than {MAX_DEPTH} levels "
                                 "deep (objects, arrays and $ref pointers)")
            if isinstance(node, list):
                stack.extend((item, product, name + len(str(i)) + 1, depth + 1, following)
                             for i, item in reversed(list(enumerate(node))))
                continue
            if not isinstance(node, dict):
                continue
            product *= max(1, self._bounds(node, name))
            if product > MAX_NESTED:
                raise ValueError(f"nested repetitions multiply to {product}; the bounds "
                                 f"(minItems, maxItems, minLength, ...) on one path may "
                                 f"multiply to at most {MAX_NESTED}")
            self._pattern(node.get("pattern"), name)
            children: list[tuple[Any, int, int, int, tuple[str, ...]]] = []
            for key, value in node.items():
                if key in _DATA or not isinstance(value, (dict, list)):
                    continue
                if key in _MAPS and isinstance(value, dict):
                    children += [(schema, product, name + len(str(sub)) + 1, depth + 2,
                                  following) for sub, schema in value.items()]
                else:
                    children.append((value, product, name + min(len(str(key)), 6), depth + 1,
                                     following))
            ref = node.get("$ref")
            if isinstance(ref, str) and ref not in following:
                target = self._target(ref)
                if target is not None:
                    children.insert(0, (target, product, len(ref), depth + 1,
                                        (*following, ref)))
            stack.extend(reversed(children))

    def _bounds(self, node: dict[str, Any], name: int) -> int:
        """The largest repetition bound of ``node`` (each checked), counted as written."""
        bounds = {}
        for key in BOUNDS:
            value = node.get(key)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if not value <= MAX_REPEAT:  # NaN too
                raise ValueError(f"'{key}' is {_shown(value)}; at most {MAX_REPEAT} (the schema's "
                                 f"grammar is limited to {MAX_GRAMMAR_CHARS} characters)")
            if value < 0 or value != int(value):  # -Infinity too
                raise ValueError(f"'{key}' is {_shown(value)}; it must be a non-negative "
                                 "integer")
            bounds[key] = int(value)
        largest = max(bounds.values(), default=0)
        if largest:
            items = node.get("items")
            step = STEP_CHARS
            if isinstance(items, dict) and not set(items) <= _SHORT_ITEMS:
                step += name + 5  # the item rule is named after its path ("-item")
            written = max((bounds.get(k, 0) for k in _WRITTEN), default=0)
            self._write(written * step)
        return largest

    def _pattern(self, pattern: Any, name: int) -> None:
        if not isinstance(pattern, str):
            return
        for match in _QUANTIFIER.finditer(pattern):
            for number in match.groups():
                if number and (len(number) > 9 or int(number) > MAX_PATTERN_REPEAT):
                    raise ValueError(f"the pattern repeats {_shown(number)} times; at most "
                                     f"{MAX_PATTERN_REPEAT}")
                if number:
                    self._write(int(number))

    def _write(self, chars: int) -> None:
        self.chars += chars
        if self.chars > MAX_GRAMMAR_CHARS:
            raise ValueError(f"the JSON schema's grammar would be larger than "
                             f"{MAX_GRAMMAR_CHARS} characters (its minItems, maxItems, "
                             "minLength and maxLength repetitions)")

    def _target(self, ref: str) -> Any:
        """What a local ``#/...`` pointer points at; None when it does not resolve."""
        if not ref.startswith("#"):
            return None
        node = self.root
        for part in ref[1:].split("/")[1:]:
            part = part.replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                return None
        return node


def _shown(number: object) -> str:
    """A number as a message shows it: a long one by its first digits and its length."""
    text = str(number)
    return text if len(text) <= 20 else f"{text[:12]}... ({len(text)} characters)"
