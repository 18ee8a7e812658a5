"""A JSON schema as a llama.cpp grammar: llama-cpp-python's converter, with its string
literals escaped as GBNF reads them.

The converter writes each ``const``/``enum`` value and property name as the JSON text of the
value inside a GBNF string literal, escaping ``"``, CR and LF but not ``\\``, which GBNF
also reads as an escape. So the backslash of every JSON escape in that text was read as
the grammar's own: ``const: "a\\\\b"`` made the model answer ``"a\\b"`` (a backspace), and
``enum: ["x\\"y"]`` wrote a literal that ended at the escaped quote (the grammar did not
parse, a 400). Escaping ``\\`` first makes the answer the value's JSON text.
"""

from __future__ import annotations

import json
from typing import Any


def schema_grammar(schema: str) -> Any:
    """``LlamaGrammar.from_json_schema(schema)`` with every literal escaped correctly."""
    from llama_cpp import llama_grammar

    base: Any = llama_grammar.SchemaConverter

    class Converter(base):  # type: ignore[misc]
        def _format_literal(self, literal: str) -> str:
            return str(super()._format_literal(literal.replace("\\", "\\\\")))

    # as llama_grammar.json_schema_to_gbnf does, with the converter above
    converter: Any = Converter(prop_order={}, allow_fetch=False, dotall=False,
                               raw_pattern=False)
    resolved = converter.resolve_refs(json.loads(schema), "stdin")
    converter.visit(resolved, "")
    return llama_grammar.LlamaGrammar.from_string(converter.format_grammar(), verbose=False)
