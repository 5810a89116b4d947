"""Grammar text for JSON schemas and tool calls: closed objects, bounded whitespace, what llguidance refuses."""

from __future__ import annotations

import json
from typing import Any

import llguidance
import pytest

from streamserve.engine import check_grammar
from streamserve.prompting.errors import RequestError
from streamserve.prompting.grammars import calls_grammar, check_schema, closed_objects, json_grammar, relocated


def accepts(grammar: str, text: str) -> bool:
    """Whether ``text`` is a complete output of ``grammar`` (checked byte by byte, without a model)."""
    tokenizer = llguidance.LLTokenizer(llguidance.TokenizerWrapper(_ByteTokenizer()))
    matcher = llguidance.LLMatcher(tokenizer, grammar, log_level=0)
    ok = matcher.consume_tokens(list(text.encode()))
    return ok and matcher.is_accepting()


class _ByteTokenizer:
    """One token per byte, token 256 the end of sequence: enough to test what a grammar accepts."""

    eos_token_id = 256
    bos_token_id = None
    tokens = [bytes([b]) for b in range(256)] + [b"<eos>"]

    def __call__(self, text: str | bytes) -> list[int]:
        return list(text.encode() if isinstance(text, str) else text)


PERSON: dict[str, Any] = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
                          "required": ["name"]}


def test_objects_with_properties_are_closed_unless_the_schema_says_otherwise() -> None:
    schema = {
        "type": "object",
        "properties": {"a": PERSON, "properties": {"type": "object", "additionalProperties": True,
                                                   "properties": {"x": {}}}},
        "$defs": {"P": PERSON},
        "anyOf": [PERSON],
        "allOf": [PERSON],
        "items": [PERSON],
        "x-guidance": {"lenient": True},
    }
    out = closed_objects(schema)
    assert out["additionalProperties"] is False
    assert out["properties"]["a"]["additionalProperties"] is False
    assert out["properties"]["properties"]["additionalProperties"] is True  # a property named "properties"
    assert out["$defs"]["P"]["additionalProperties"] is False
    assert out["anyOf"][0]["additionalProperties"] is False
    assert "additionalProperties" not in out["allOf"][0]  # it would forbid the other branches' keys
    assert out["items"][0]["additionalProperties"] is False
    assert "x-guidance" not in out
    assert "additionalProperties" not in PERSON  # the caller's schema is not changed


def test_json_grammar_enforces_the_schema_with_bounded_whitespace() -> None:
    grammar = json_grammar(PERSON)
    assert accepts(grammar, '{"name": "Bob", "age": 3}')
    assert accepts(grammar, '{\n    "name": "Bob"\n}')
    assert not accepts(grammar, '{"name": "Bob", "extra": 1}')
    assert not accepts(grammar, '{"age": 3}')
    assert not accepts(grammar, ' {"name": "Bob"}')  # nothing before the value
    assert not accepts(grammar, '{"name":' + " " * 30 + '"Bob"}')  # one slot holds at most one space...
    assert not accepts(grammar, '{\n' + " " * 25 + '"name": "Bob"}')  # ...or a newline and 24 of indent


def test_check_schema_names_the_param_and_the_problem() -> None:
    check_schema(PERSON, param="response_format", what="response_format 'p'")
    with pytest.raises(RequestError) as info:
        check_schema({"type": "array", "uniqueItems": True}, param="tools[0].function.parameters",
                     what="function 'f'", code="invalid_function_parameters")
    assert info.value.param == "tools[0].function.parameters"
    assert info.value.code == "invalid_function_parameters"
    assert "function 'f'" in info.value.message and "uniqueItems" in info.value.message


FUNCTIONS = [("get_weather", {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
             ("noop", {"type": "object", "properties": {}})]
CALL_W = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Rome"}}\n</tool_call>'
CALL_N = '<tool_call>\n{"name": "noop", "arguments": {}}\n</tool_call>'


def test_required_calls_start_after_the_opened_marker() -> None:
    grammar = calls_grammar(FUNCTIONS, parallel=True, opened=True)
    check_grammar(grammar)
    opened = CALL_W.removeprefix("<tool_call>\n")
    assert accepts(grammar, opened)
    assert accepts(grammar, opened + "\n" + CALL_N)
    assert not accepts(grammar, "")
    assert not accepts(grammar, opened.replace("Rome", "Rome\", \"x\": \"1"))
    assert not accepts(grammar, opened.replace("get_weather", "get_time"))
    single = calls_grammar(FUNCTIONS, parallel=False, opened=True)
    assert accepts(single, opened) and not accepts(single, opened + "\n" + CALL_N)


def test_auto_allows_text_or_calls_and_constrains_a_call_once_it_starts() -> None:
    grammar = calls_grammar(FUNCTIONS, parallel=True, opened=False, optional=True)
    check_grammar(grammar)
    assert accepts(grammar, "Just text, with <tool braces {")
    assert accepts(grammar, CALL_W)
    assert accepts(grammar, "Let me check.\n" + CALL_W + "\n" + CALL_N)
    assert not accepts(grammar, "Let me check.\n<tool_call>\nnot json")
    assert not accepts(grammar, CALL_W + " and then more text")


def test_auto_with_an_answer_schema_allows_that_json_or_calls() -> None:
    grammar = calls_grammar(FUNCTIONS, parallel=False, opened=False, optional=True, answer=PERSON)
    check_grammar(grammar)
    assert accepts(grammar, json.dumps({"name": "Bob"}))
    assert accepts(grammar, CALL_N)
    assert not accepts(grammar, "plain text")


def _call(name: str, arguments: Any) -> str:
    return f'{json.dumps({"name": name, "arguments": arguments})}\n</tool_call>'


def test_relocated_rebases_local_refs_and_leaves_data_and_other_resources_alone() -> None:
    schema = {
        "$id": "https://example.com/tool", "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {"a": {"$ref": "#/$defs/A"}, "self": {"$ref": "#"}, "remote": {"$ref": "other.json#/x"},
                       "anchor": {"$ref": "#here"}},
        "$defs": {"A": {"anyOf": [{"$ref": "#/definitions/B"}, {"type": "null"}]},
                  "R": {"$id": "https://example.com/r", "properties": {"x": {"$ref": "#/$defs/Y"}}}},
        "definitions": {"B": {"type": "string", "const": {"$ref": "#/not/a/schema"}}},
    }
    out = relocated(schema, "/properties/arguments")
    assert "$id" not in out and "$schema" not in out
    assert out["properties"]["a"]["$ref"] == "#/properties/arguments/$defs/A"
    assert out["properties"]["self"]["$ref"] == "#/properties/arguments"
    assert out["properties"]["remote"]["$ref"] == "other.json#/x"
    assert out["properties"]["anchor"]["$ref"] == "#here"
    assert out["$defs"]["A"]["anyOf"][0]["$ref"] == "#/properties/arguments/definitions/B"
    assert out["$defs"]["R"]["properties"]["x"]["$ref"] == "#/$defs/Y"  # a resource of its own
    assert out["definitions"]["B"]["const"] == {"$ref": "#/not/a/schema"}  # data, not a schema
    assert schema["properties"]["a"]["$ref"] == "#/$defs/A"  # the caller's schema is not changed


UNIT = {"enum": ["celsius", "fahrenheit"], "title": "Unit", "type": "string"}
WEATHER = {  # what pydantic_function_tool sends for a model with an enum field and a nested model
    "$defs": {"Unit": UNIT,
              "Place": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"$ref": "#/$defs/Unit"}},
                        "required": ["city", "unit"], "additionalProperties": False}},
    "type": "object",
    "properties": {"place": {"$ref": "#/$defs/Place"}, "unit": {"$ref": "#/$defs/Unit"}},
    "required": ["place", "unit"], "additionalProperties": False,
}
CHILDREN = {"type": "array", "items": {"$ref": "#/$defs/Node"}}
TREE = {  # a recursive model: a node and its children
    "$defs": {"Node": {"type": "object", "properties": {"name": {"type": "string"}, "children": CHILDREN},
                       "required": ["name", "children"], "additionalProperties": False}},
    "$ref": "#/$defs/Node",
}


def test_tool_parameters_with_defs_and_refs_are_enforced_inside_a_call() -> None:
    for parallel in (True, False):
        grammar = calls_grammar([("get_weather", WEATHER)], parallel=parallel, opened=True)
        check_grammar(grammar)
        good = {"place": {"city": "Rome", "unit": "celsius"}, "unit": "fahrenheit"}
        assert accepts(grammar, _call("get_weather", good))
        assert not accepts(grammar, _call("get_weather", {**good, "unit": "kelvin"}))
        assert not accepts(grammar, _call("get_weather", {**good, "place": {"city": "Rome", "unit": "k"}}))


def test_a_recursive_model_stays_recursive_inside_a_call() -> None:
    grammar = calls_grammar([("tree", TREE)], parallel=True, opened=True)
    leaf = {"name": "c", "children": []}
    assert accepts(grammar, _call("tree", {"name": "a", "children": [{"name": "b", "children": [leaf]}]}))
    assert not accepts(grammar, _call("tree", {"name": "a", "children": [{"name": "b"}]}))
    self_ref = {"type": "object", "properties": {"next": {"anyOf": [{"$ref": "#"}, {"type": "null"}]}},
                "required": ["next"]}
    grammar = calls_grammar([("chain", self_ref)], parallel=True, opened=True)
    assert accepts(grammar, _call("chain", {"next": {"next": {"next": None}}}))
    assert not accepts(grammar, _call("chain", {"next": {"next": 1}}))


def test_two_tools_defining_the_same_name_differently_each_keep_their_own() -> None:
    def tool(item_type: str) -> dict[str, Any]:
        return {"$defs": {"Item": {"type": item_type}}, "type": "object",
                "properties": {"items": {"type": "array", "items": {"$ref": "#/$defs/Item"}}}, "required": ["items"]}

    grammar = calls_grammar([("words", tool("string")), ("numbers", tool("integer")), ("tree", TREE)],
                            parallel=True, opened=True)
    check_grammar(grammar)
    assert accepts(grammar, _call("words", {"items": ["a", "b"]}))
    assert accepts(grammar, _call("numbers", {"items": [1, 2]}))
    assert accepts(grammar, _call("tree", {"name": "a", "children": []}))
    assert not accepts(grammar, _call("words", {"items": [1]}))
    assert not accepts(grammar, _call("numbers", {"items": ["a"]}))
    auto = calls_grammar([("words", tool("string")), ("numbers", tool("integer"))], parallel=False, opened=False,
                         optional=True, answer=WEATHER)
    assert accepts(auto, "<tool_call>\n" + _call("numbers", {"items": [3]}))
    assert accepts(auto, json.dumps({"place": {"city": "Oslo", "unit": "celsius"}, "unit": "celsius"}))
