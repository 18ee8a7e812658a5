"""The grammar check on its own (`engines/grammar_check.py`): what it refuses, what it
rewrites, and that the grammars the converter writes for ordinary schemas pass unchanged."""

from __future__ import annotations

import re

import pytest

from wattserve_serving.engines.grammar_check import checked_grammar

JSON_CHAR = r'char ::= [^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4})'


@pytest.mark.parametrize("grammar", [
    JSON_CHAR,
    'root ::= "{" space "\\"a\\"" ":" [0-9]+ "}"  # a comment with " and [\nspace ::= " "?',
    r'dot ::= [\U00000000-\U0010FFFF]',  # a range that starts at NUL holds more
    r'x ::= [^\x0A\x0D] "\u00e9" "\\"',
])
def test_ordinary_grammars_pass_unchanged(grammar: str) -> None:
    assert checked_grammar(grammar) == grammar


@pytest.mark.parametrize(("grammar", "says"), [
    ('root ::= "\\u0000"', "U+0000"),
    ('root ::= "\\x00"', "U+0000"),
    ('root ::= "a"\x00 | "b"', "U+0000"),
    (r'root ::= "\U00110000"', "past U+10FFFF"),
    (r'root ::= "\udc00"', "surrogate"),
    (r'root ::= "\ud83c"', "surrogate"),
    (r'root ::= [\x00-\x00]', "character class"),
    (r'root ::= []', "character class"),
    (r'root ::= [z-a]', "character class"),
    (r'root ::= [^\x00-\U0010FFFF]', "character class"),
    (r'root ::= [\uD800-\uDFFF\U00110000-\U00120000]', "character class"),
])
def test_a_grammar_no_token_can_satisfy_is_refused(grammar: str, says: str) -> None:
    with pytest.raises(ValueError, match=re.escape(says)):
        checked_grammar(grammar)


def test_surrogate_pairs_become_their_character_and_control_characters_json_escapes() -> None:
    assert checked_grammar(r'root ::= "\"\ud83c\udf89\""') == r'root ::= "\"\U0001F389\""'
    assert checked_grammar(r'root ::= "a\u0001\n\tb"') == r'root ::= "a\\u0001\\n\\tb"'
