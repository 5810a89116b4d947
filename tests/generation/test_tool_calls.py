"""ToolCallParser: content and tool calls split out of streamed text, however the text is cut."""

from __future__ import annotations

import itertools
import json
import re

import pytest

from streamserve.generation.events import ToolCallDelta, ToolCallEnd, ToolCallEvent, ToolCallStart
from streamserve.generation.tool_calls import ToolCallParser, new_call_id

TWO_CALLS = (
    '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Par}is \\"x\\" {", "n": [1, {"a": 2}]}}\n'
    '</tool_call>\n<tool_call>\n{"name": "get_stock_price", "arguments": {"ticker": "AAPL"}}\n</tool_call>'
)


def feed(pieces: list[str], prefix: str = "") -> list[str | ToolCallEvent]:
    parser = ToolCallParser(3)
    out = parser.push(prefix) if prefix else []
    for piece in pieces:
        out += parser.push(piece)
    return out + parser.flush()


def cuts(text: str, n: int) -> list[list[str]]:
    return [[text[a:b] for a, b in itertools.pairwise([0, *points, len(text)])]
            for points in itertools.combinations(range(1, len(text)), n)]


def summary(out: list[str | ToolCallEvent]) -> tuple[str, list[tuple[str, str]], list[str]]:
    """Joined content, (name, joined arguments) per call, and every End's arguments."""
    content = "".join(item for item in out if isinstance(item, str))
    calls: list[tuple[str, str]] = []
    ends = []
    for item in out:
        if isinstance(item, ToolCallStart):
            assert item.call == len(calls) and item.index == 3
            calls.append((item.name, ""))
        elif isinstance(item, ToolCallDelta):
            assert item.call == len(calls) - 1
            calls[-1] = (calls[-1][0], calls[-1][1] + item.arguments)
        elif isinstance(item, ToolCallEnd):
            ends.append(item.arguments)
    return content, calls, ends


EXPECTED_CALLS = [("get_weather", '{"city": "Par}is \\"x\\" {", "n": [1, {"a": 2}]}'),
                  ("get_stock_price", '{"ticker": "AAPL"}')]


@pytest.mark.parametrize("pieces", [[TWO_CALLS], list(TWO_CALLS), *cuts(TWO_CALLS, 2)[::97]])
def test_calls_are_the_models_exact_argument_text_however_cut(pieces: list[str]) -> None:
    content, calls, ends = summary(feed(pieces))
    assert content == ""
    assert calls == EXPECTED_CALLS
    assert ends == [args for _, args in EXPECTED_CALLS]
    assert json.loads(calls[0][1])["city"] == 'Par}is "x" {'


@pytest.mark.parametrize("pieces", cuts("Sure.  \n<tool_call>\n", 1) + cuts("Sure.  \n<tool_call>\n", 2)[::5])
def test_content_before_a_call_loses_only_its_trailing_whitespace(pieces: list[str]) -> None:
    out = feed([*pieces, '{"name": "f", "arguments": {}}\n</tool_call>'])
    content, calls, _ = summary(out)
    assert content == "Sure."
    assert calls == [("f", "{}")]
    assert isinstance(out[0], str)  # content comes first


@pytest.mark.parametrize("pieces", cuts("Hello <tool and more\n", 1) + cuts("a <tool_call", 1))
def test_text_that_only_looks_like_a_marker_is_content(pieces: list[str]) -> None:
    text = "".join(pieces)
    content, calls, _ = summary(feed(pieces))
    assert content == text and calls == []


def test_a_possible_marker_prefix_is_held_back_until_resolved() -> None:
    parser = ToolCallParser(0)
    assert parser.push("Hi <tool_") == ["Hi"]
    assert parser.push("x") == [" <tool_x"]
    assert parser.push("\n\n") == []
    assert parser.flush() == ["\n\n"]


def test_a_named_calls_head_in_the_prefix_opens_the_call_at_once() -> None:
    parser = ToolCallParser(0)
    head = parser.push('<tool_call>\n{"name": "get_weather", "arguments": ')
    assert [type(e) for e in head] == [ToolCallStart]
    assert parser.push('{"city"') == [ToolCallDelta(0, 0, '{"city"')]
    rest = parser.push(': "Rome"}')
    assert rest[0] == ToolCallDelta(0, 0, ': "Rome"}')
    assert isinstance(rest[1], ToolCallEnd) and rest[1].arguments == '{"city": "Rome"}'
    assert parser.flush() == []


def test_a_call_cut_by_the_token_limit_has_no_end() -> None:
    out = feed(['<tool_call>\n{"name": "f", "arguments": {"a": "unfinish'])
    assert [type(e) for e in out] == [ToolCallStart, ToolCallDelta]
    out = feed(['<tool_call>\n{"name": "f", "argu'])
    assert out == []


def test_escaped_names_are_decoded() -> None:
    (start, *_) = feed(['<tool_call>\n{"name": "a\\u0062c", "arguments": {}}\n</tool_call>'])
    assert isinstance(start, ToolCallStart) and start.name == "abc"


def test_call_ids_look_like_openais() -> None:
    ids = {new_call_id() for _ in range(50)}
    assert len(ids) == 50
    assert all(re.fullmatch(r"call_[A-Za-z0-9]{24}", i) for i in ids)
