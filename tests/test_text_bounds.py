"""The re-rank reason's one-line pattern means what validation means (1..n characters, not
blank; in its no-digits form, a first letter and no digit), in Python's `re` and in the real
xgrammar compiler (cache on, as vLLM runs it) with the packaged tokenizer."""

from __future__ import annotations

import json
import re

import pytest
import xgrammar as xgr
from transformers import PreTrainedTokenizerBase

from agent.recommend.rerank import rerank_schema
from agent.runtime.structured import decoding_schema
from agent.schemas.text import MAX_PATTERN_CHARS, one_line_pattern

CASES = [
    ("abcde", True),
    ("abcdef", False),
    ("a b c", True),
    (" abc", False),
    ("", False),
    ("é ü", True),
    ('say "hi"', False),
    ("tab\there", False),
]
WORDS_CASES = [
    ("Fun", True),
    ("é ü", False),
    ("a.b c", True),
    ("Se7en", False),
    ("10.1.1", False),
    ("abcdef", False),
]


@pytest.mark.parametrize(("text", "allowed"), CASES)
def test_pattern_means_one_to_n_characters_not_blank(text: str, allowed: bool) -> None:
    assert bool(re.fullmatch(one_line_pattern(5)[1:-1], text)) is allowed


@pytest.mark.parametrize(("text", "allowed"), WORDS_CASES)
def test_words_pattern_starts_with_a_letter_and_has_no_digits(text: str, allowed: bool) -> None:
    assert bool(re.fullmatch(one_line_pattern(5, digits=False)[1:-1], text)) is allowed


def test_bounds_outside_what_xgrammar_compiles_are_refused() -> None:
    with pytest.raises(ValueError, match="1..128"):
        one_line_pattern(MAX_PATTERN_CHARS + 1)


def test_reason_is_sent_as_the_pattern() -> None:
    sent = decoding_schema(rerank_schema(["1", "2"], ["3"], 2))
    reason = sent["$defs"]["RankedPick"]["properties"]["reason"]
    assert reason == {"type": "string", "pattern": one_line_pattern(100, digits=False),
                      "title": "Reason", "description": "One short sentence"}  # fmt: skip


@pytest.fixture(scope="module")
def compiler(packaged_tokenizer: PreTrainedTokenizerBase) -> xgr.GrammarCompiler:
    info = xgr.TokenizerInfo.from_huggingface(packaged_tokenizer)
    return xgr.GrammarCompiler(info, max_threads=1, cache_enabled=True)


def accepts(
    compiler: xgr.GrammarCompiler, max_chars: int, text: str, *, digits: bool = True
) -> bool:
    field = {"type": "string", "pattern": one_line_pattern(max_chars, digits=digits)}
    schema = {"type": "object", "properties": {"x": field}, "required": ["x"]}
    grammar = compiler.compile_json_schema(json.dumps(schema), any_whitespace=False)
    reply = json.dumps({"x": text}, ensure_ascii=False)
    return bool(xgr.GrammarMatcher(grammar).accept_string(reply))


@pytest.mark.parametrize(("text", "allowed"), CASES)
def test_xgrammar_enforces_the_pattern(
    compiler: xgr.GrammarCompiler, text: str, allowed: bool
) -> None:
    assert accepts(compiler, 5, text) is allowed


@pytest.mark.parametrize(("text", "allowed"), WORDS_CASES)
def test_xgrammar_enforces_the_words_pattern(
    compiler: xgr.GrammarCompiler, text: str, allowed: bool
) -> None:
    assert accepts(compiler, 5, text, digits=False) is allowed


def test_xgrammar_compiles_the_longest_pattern_with_its_cache_on(
    compiler: xgr.GrammarCompiler,
) -> None:
    longest = "a" * MAX_PATTERN_CHARS
    assert accepts(compiler, MAX_PATTERN_CHARS, longest)
    assert not accepts(compiler, MAX_PATTERN_CHARS, longest + "a")
