"""response_format, tools and tool_choice -> OutputSpec, and every 400 with OpenAI's param and words."""

from __future__ import annotations

from typing import Any

import pytest

from streamserve.api.errors import APIError, InvalidRequestError, NotSupportedError
from streamserve.api.output_params import output_spec
from streamserve.api.protocol import ChatCompletionRequest
from streamserve.prompting.errors import RequestError
from streamserve.prompting.structured import ToolChoice

CITY = {"type": "object", "properties": {"city": {"type": "string"}}}
WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": CITY}}
TIME = {"type": "function", "function": {"name": "get-time_2"}}


def spec_of(**fields: Any) -> Any:
    return output_spec(ChatCompletionRequest.model_validate({"model": "m", "messages": [{"role": "user",
                                                                                         "content": "hi"}], **fields}))


def refusal(**fields: Any) -> APIError | RequestError:
    with pytest.raises((APIError, RequestError)) as info:
        spec_of(**fields)
    return info.value


def test_no_fields_no_structure() -> None:
    spec = spec_of()
    assert spec.json_schema is None and spec.tools == () and not spec.calls_tools


@pytest.mark.parametrize(("format_", "schema"), [
    ({"type": "text"}, None),
    ({"type": "json_object"}, {"type": "object"}),
    ({"type": "json_schema", "json_schema": {"name": "P", "strict": True,
                                             "schema": {"type": "object", "properties": {"a": {"type": "integer"}}}}},
     {"type": "object", "properties": {"a": {"type": "integer"}}}),
])
def test_response_formats(format_: dict[str, Any], schema: Any) -> None:
    assert spec_of(response_format=format_).json_schema == schema


@pytest.mark.parametrize(("format_", "param", "words"), [
    ({"type": "xml"}, "response_format.type", "Supported values"),
    ({"type": "json_schema"}, "response_format.json_schema", "Missing"),
    ({"type": "json_schema", "json_schema": {"name": "bad name!", "schema": {}}}, "response_format.json_schema.name",
     "name"),
    ({"type": "json_schema", "json_schema": {"name": "P", "schema": {"type": "array", "uniqueItems": True}}},
     "response_format", "uniqueItems"),
    ({"type": "json_schema", "json_schema": {"name": "P", "schema": {"type": "string", "format": "ftp-url"}}},
     "response_format", "format"),
])
def test_bad_response_formats_are_400s_naming_the_problem(format_: dict[str, Any], param: str, words: str) -> None:
    err = refusal(response_format=format_)
    assert err.param == param and words in err.message


def test_tools_and_the_default_choice() -> None:
    spec = spec_of(tools=[WEATHER, TIME])
    assert [t.name for t in spec.tools] == ["get_weather", "get-time_2"]
    assert spec.tools[1].parameters == {"type": "object", "properties": {}}
    assert spec.tool_choice == ToolChoice("auto") and spec.parallel_tool_calls and spec.calls_tools
    assert not spec_of(tools=[WEATHER], parallel_tool_calls=False).parallel_tool_calls


@pytest.mark.parametrize(("choice", "expected"), [
    ("none", ToolChoice("none")),
    ("required", ToolChoice("required")),
    ({"type": "function", "function": {"name": "get_weather"}}, ToolChoice("function", name="get_weather")),
    ({"type": "allowed_tools", "allowed_tools": {"mode": "required", "tools": [
        {"type": "function", "function": {"name": "get-time_2"}}]}}, ToolChoice("required", allowed=("get-time_2",))),
])
def test_tool_choices(choice: Any, expected: ToolChoice) -> None:
    assert spec_of(tools=[WEATHER, TIME], tool_choice=choice).tool_choice == expected


def test_tool_choice_without_tools() -> None:
    err = refusal(tool_choice="auto")
    assert isinstance(err, InvalidRequestError) and err.param == "tool_choice"
    assert "only allowed when 'tools' are specified" in err.message


@pytest.mark.parametrize("choice", ["sometimes", {"type": "function", "function": {"name": "nope"}},
                                    {"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": [
                                        {"type": "function", "function": {"name": "nope"}}]}}])
def test_bad_tool_choices_name_tool_choice(choice: Any) -> None:
    err = refusal(tools=[WEATHER], tool_choice=choice)
    assert err.param == "tool_choice"


def test_custom_tool_choice_is_not_supported() -> None:
    err = refusal(tools=[WEATHER], tool_choice={"type": "custom", "custom": {"name": "x"}})
    assert isinstance(err, NotSupportedError) and err.param == "tool_choice.type"


@pytest.mark.parametrize(("tool", "param", "code", "words"), [
    ({"type": "web_search"}, "tools[1].type", "unsupported_parameter", "only 'function'"),
    ({"type": "function"}, "tools[1].function", "missing_required_parameter", "Missing"),
    ({"type": "function", "function": {"name": "has space"}}, "tools[1].function.name", "invalid_value", "pattern"),
    ({"type": "function", "function": {"name": "x" * 65}}, "tools[1].function.name", "invalid_value", "pattern"),
    ({"type": "function", "function": {"name": "f", "parameters": {"type": "string"}}},
     "tools[1].function.parameters", "invalid_function_parameters", "'type: \"object\"'"),
    ({"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {
        "tags": {"type": "array", "uniqueItems": True}}}}},
     "tools[1].function.parameters", "invalid_function_parameters", "Invalid schema for function 'f'"),
])
def test_bad_tools_name_their_field(tool: dict[str, Any], param: str, code: str, words: str) -> None:
    err = refusal(tools=[WEATHER, tool])
    assert (err.param, err.code) == (param, code)
    assert words in err.message


def test_function_names_must_be_unique() -> None:
    assert refusal(tools=[WEATHER, WEATHER]).param == "tools"
