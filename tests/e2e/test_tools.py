"""Tool calls on the default model, through the official client and on the raw wire.

The streamed shape is OpenAI's recorded one: a ``{"role": "assistant", "content": null}`` role chunk,
each call opened once with ``index``, ``id``, ``type`` and the name (``arguments: ""``), then argument
fragments only, then ``{"delta": {}, "finish_reason": "tool_calls"}``. Arguments are valid against the
function's parameters whenever a call completes. Greedy, one request at a time.
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import openai
import pydantic
import pytest
from openai import OpenAI

from tests.e2e.ssewire import MODEL, SSEStream, choice_chunks, finish_reasons, read_stream

pytestmark = pytest.mark.e2e

WEATHER: dict[str, Any] = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                                                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                   "required": ["city"]}}}
STOCK: dict[str, Any] = {"type": "function", "function": {
    "name": "get_stock_price", "description": "Get the price of a stock",
    "parameters": {"type": "object", "properties": {"ticker": {"type": "string"}}, "required": ["ticker"]}}}
TOOLS = [WEATHER, STOCK]
ASK = [{"role": "user", "content": "What's the weather like in Paris?"}]
CALL_ID = re.compile(r"call_[A-Za-z0-9]{24}")


def valid_arguments(name: str, arguments: str) -> dict[str, Any]:
    """The parsed arguments, checked against the function's parameters (closed objects, required keys)."""
    value = json.loads(arguments)
    spec = {"get_weather": WEATHER, "get_stock_price": STOCK}[name]["function"]["parameters"]
    assert isinstance(value, dict)
    assert set(spec["required"]) <= set(value) <= set(spec["properties"])
    assert all(isinstance(v, str) for v in value.values())
    if "unit" in value:
        assert value["unit"] in ("celsius", "fahrenheit")
    return value


def streamed_calls(stream: SSEStream, index: int = 0) -> list[tuple[str, str, str]]:
    """Check one choice's tool-call deltas have OpenAI's exact shape; return (id, name, arguments) per call."""
    chunks = choice_chunks(stream, index)
    assert chunks[0]["delta"] == {"role": "assistant", "content": None}
    assert chunks[-1]["delta"] == {} and chunks[-1]["finish_reason"] is not None
    calls: list[list[str]] = []
    for chunk in chunks[1:-1]:
        assert chunk["finish_reason"] is None and chunk["logprobs"] is None
        assert set(chunk["delta"]) == {"tool_calls"}
        (entry,) = chunk["delta"]["tool_calls"]
        if "id" in entry:
            assert entry["index"] == len(calls)
            assert set(entry) == {"index", "id", "type", "function"} and entry["type"] == "function"
            assert set(entry["function"]) == {"name", "arguments"} and entry["function"]["arguments"] == ""
            assert CALL_ID.fullmatch(entry["id"])
            calls.append([entry["id"], entry["function"]["name"], ""])
        else:
            assert set(entry) == {"index", "function"} and set(entry["function"]) == {"arguments"}
            assert entry["index"] == len(calls) - 1 and entry["function"]["arguments"]
            calls[-1][2] += entry["function"]["arguments"]
    assert len({c[0] for c in calls}) == len(calls)
    return [(i, n, a) for i, n, a in calls]


def test_streamed_required_call_has_openais_exact_delta_shape(http: httpx.Client) -> None:
    # One call: a 135M model asked for more may loop inside a second call's string until max_tokens
    # (an honest "length"); the shape of a call is what this test is about.
    body = {"model": MODEL, "messages": ASK, "tools": TOOLS, "tool_choice": "required", "temperature": 0,
            "max_tokens": 120, "parallel_tool_calls": False}
    stream = read_stream(http, "/chat/completions", body)
    calls = streamed_calls(stream)
    assert len(calls) == 1 and finish_reasons(stream) == {0: "tool_calls"}
    for _, name, arguments in calls:
        valid_arguments(name, arguments)
    assert calls[0][1] == "get_weather"
    # Arguments arrive piece by piece, as generated.
    assert sum(1 for c in choice_chunks(stream, 0) if "id" not in (c["delta"].get("tool_calls") or [{"id": 0}])[0]) > 3


def test_named_function_non_streamed(client: OpenAI) -> None:
    response = client.chat.completions.create(
        model=MODEL, messages=ASK, tools=TOOLS, temperature=0, max_tokens=60,  # type: ignore[arg-type]
        tool_choice={"type": "function", "function": {"name": "get_weather"}})
    choice = response.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None and choice.message.refusal is None
    (call,) = choice.message.tool_calls or []
    assert call.type == "function" and CALL_ID.fullmatch(call.id)
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    valid_arguments("get_weather", call.function.arguments)  # type: ignore[union-attr]


class GetWeather(pydantic.BaseModel):
    city: str


def test_stream_helper_with_a_pydantic_function_tool(client: OpenAI) -> None:
    # One call: with parallel calls allowed, SmolLM2 repeats the same call until max_tokens (finish "length").
    with client.chat.completions.stream(model=MODEL, messages=ASK, tools=[openai.pydantic_function_tool(GetWeather)],
                                        tool_choice="required", parallel_tool_calls=False, temperature=0,
                                        max_tokens=120) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_completion()
    assert "tool_calls.function.arguments.delta" in kinds and "tool_calls.function.arguments.done" in kinds
    calls = final.choices[0].message.tool_calls or []
    assert calls and all(isinstance(c.function.parsed_arguments, GetWeather) for c in calls)
    assert final.choices[0].finish_reason == "tool_calls"


def test_round_trip_call_result_then_a_text_answer(client: OpenAI) -> None:
    first = client.chat.completions.create(model=MODEL, messages=ASK, tools=TOOLS, temperature=0,  # type: ignore
                                           max_tokens=60, tool_choice={"type": "function",
                                                                       "function": {"name": "get_weather"}})
    message = first.choices[0].message
    (call,) = message.tool_calls or []
    history: list[Any] = [
        *ASK,
        message.model_dump(exclude_none=True, include={"role", "content", "tool_calls"}) | {"content": None},
        {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"temperature_c": 21, "sky": "sunny"})},
    ]
    second = client.chat.completions.create(model=MODEL, messages=history, tools=TOOLS, temperature=0,  # type: ignore
                                            max_tokens=60)
    answer = second.choices[0]
    assert answer.finish_reason in ("stop", "length") and not answer.message.tool_calls
    assert answer.message.content


AUTO_PROMPTS = ["What's the weather like in Paris?", "Hi! How are you?", "What is the price of AAPL?"]


@pytest.mark.parametrize("prompt", AUTO_PROMPTS)
def test_auto_is_well_formed_either_way(http: httpx.Client, client: OpenAI, prompt: str) -> None:
    messages = [{"role": "user", "content": prompt}]
    body = {"model": MODEL, "messages": messages, "tools": TOOLS, "temperature": 0, "max_tokens": 48}
    stream = read_stream(http, "/chat/completions", body)
    chunks = choice_chunks(stream, 0)
    reason = finish_reasons(stream)[0]
    if "tool_calls" in chunks[1]["delta"] or chunks[0]["delta"].get("content") is None:
        calls = streamed_calls(stream)
        assert reason == "tool_calls" or reason == "length"
        for _, name, arguments in calls[:-1] if reason == "length" else calls:
            valid_arguments(name, arguments)
    else:
        assert chunks[0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
        assert all(set(c["delta"]) == {"content"} for c in chunks[1:-1])
        assert reason in ("stop", "length")
        assert "<tool_call" not in "".join(c["delta"]["content"] for c in chunks[1:-1])
    response = client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS,  # type: ignore
                                              temperature=0, max_tokens=48)
    assert response.choices[0].finish_reason == reason
    assert (response.choices[0].message.tool_calls is None) == (reason != "tool_calls")


def test_parallel_tool_calls_false_makes_at_most_one_call(client: OpenAI) -> None:
    response = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "What is the price of AAPL, and the weather in Rome?"}],
        tools=TOOLS, tool_choice="required", parallel_tool_calls=False, temperature=0,  # type: ignore[arg-type]
        max_tokens=120)
    assert response.choices[0].finish_reason == "tool_calls"
    assert len(response.choices[0].message.tool_calls or []) == 1


def test_n2_usage_and_logprobs_keep_working_with_tools(http: httpx.Client) -> None:
    body = {"model": MODEL, "messages": ASK, "tools": TOOLS, "tool_choice": "required", "n": 2, "seed": 5,
            "temperature": 0.8, "max_tokens": 120, "logprobs": True, "parallel_tool_calls": False,
            "stream_options": {"include_usage": True}}
    stream = read_stream(http, "/chat/completions", body)
    for index in (0, 1):
        (call,) = streamed_calls(stream, index)
        if finish_reasons(stream)[index] == "tool_calls":
            valid_arguments(call[1], call[2])
    assert stream.chunks[-1]["choices"] == [] and stream.chunks[-1]["usage"]["completion_tokens"] > 0
    assert all(chunk["usage"] is None for chunk in stream.chunks[:-1])


# --- the 400s ------------------------------------------------------------------------------------------


def bad_request(client: OpenAI, **fields: Any) -> openai.BadRequestError:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=4, **fields)
    return info.value


@pytest.mark.parametrize("stream", [False, True])
def test_tool_choice_without_tools(client: OpenAI, stream: bool) -> None:
    error = bad_request(client, tool_choice="auto", stream=stream)
    assert error.param == "tool_choice" and "only allowed when 'tools' are specified" in error.message


def test_named_function_not_in_tools(client: OpenAI) -> None:
    error = bad_request(client, tools=TOOLS, tool_choice={"type": "function", "function": {"name": "nope"}})
    assert error.param == "tool_choice"


def test_invalid_function_name(client: OpenAI) -> None:
    tool = {"type": "function", "function": {"name": "get weather"}}
    error = bad_request(client, tools=[WEATHER, tool])
    assert error.param == "tools[1].function.name"


@pytest.mark.parametrize("parameters", [{"type": "string"},
                                        {"type": "object", "properties": {"a": {"type": "array",
                                                                                "uniqueItems": True}}}])
def test_invalid_parameters_schema(client: OpenAI, parameters: dict[str, Any]) -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": parameters}}
    error = bad_request(client, tools=[tool], stream=True)
    assert (error.param, error.code) == ("tools[0].function.parameters", "invalid_function_parameters")
    assert "Invalid schema for function 'f'" in error.message
