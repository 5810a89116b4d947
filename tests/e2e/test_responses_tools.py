"""Structured outputs and function tools through the Responses API, on the real model and the official client.

``text.format`` and ``tools`` reuse chat's constrained decoding: the answer is valid JSON against its schema,
a call's arguments valid against its ``parameters``. Function calls are ``function_call`` items with their own
events, the same ids in the stream, the final object and the store; their results go back as
``function_call_output`` items, chained or sent whole. The session server serves every test here; greedy,
short, one request at a time.
"""

from __future__ import annotations

import json
import re
from typing import Any

import openai
import pydantic
import pytest
from openai import OpenAI

from tests.e2e.ssewire import MODEL
from tests.e2e.test_responses import collapse

pytestmark = pytest.mark.e2e

WEATHER: dict[str, Any] = {
    "type": "function", "name": "get_weather", "description": "Get the current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 40}},
                   "required": ["city"]},
    "strict": True,
}
ASK = "What's the weather like in Paris?"
CALL_ID = re.compile(r"call_[A-Za-z0-9]{24}")
CALL_EVENTS = ["response.created", "response.in_progress", "response.output_item.added",
               "response.function_call_arguments.delta", "response.function_call_arguments.done",
               "response.output_item.done", "response.completed"]


class City(pydantic.BaseModel):
    name: str = pydantic.Field(max_length=40)
    country: str = pydantic.Field(max_length=40)


class GetWeather(pydantic.BaseModel):
    """Get the current weather in a city."""

    city: str = pydantic.Field(max_length=40)


def collapse_calls(types: list[str]) -> list[str]:
    """The event types with runs of argument deltas folded into one (text deltas too)."""
    out: list[str] = []
    for kind in collapse(types):
        if not (out and out[-1] == kind == "response.function_call_arguments.delta"):
            out.append(kind)
    return out


def test_parse_with_a_pydantic_text_format_gives_the_model_streamed_and_not(client: OpenAI) -> None:
    parsed = client.responses.parse(model=MODEL, input="Name a city in France.", text_format=City, temperature=0,
                                    max_output_tokens=60)
    assert parsed.status == "completed" and isinstance(parsed.output_parsed, City)
    assert parsed.text.format.type == "json_schema" and parsed.text.format.name == "City"
    with client.responses.stream(model=MODEL, input="Name a city in France.", text_format=City, temperature=0,
                                 max_output_tokens=60) as stream:
        events = list(stream)
        final = stream.get_final_response()
    joined = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert joined == final.output_text == parsed.output_text  # greedy: streamed and not are the same answer
    assert final.output_parsed == parsed.output_parsed


def test_json_object_is_one_json_object(client: OpenAI) -> None:
    response = client.responses.create(model=MODEL, input="Describe a cat.", text={"format": {"type": "json_object"}},
                                       temperature=0, max_output_tokens=48)
    if response.status == "completed":
        assert isinstance(json.loads(response.output_text), dict)
    else:  # an object the model keeps filling until the limit: valid so far, cut at the limit
        assert response.incomplete_details is not None and response.incomplete_details.reason == "max_output_tokens"
        assert response.output_text.startswith("{")


def test_a_schema_that_cannot_be_enforced_is_a_400_naming_text_format(client: OpenAI) -> None:
    schema = {"type": "array", "items": {"type": "string"}, "uniqueItems": True}
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model=MODEL, input="List fruits.", max_output_tokens=16,
                                text={"format": {"type": "json_schema", "name": "fruits", "schema": schema}})
    assert info.value.body["param"] == "text.format" and "uniqueItems" in info.value.body["message"]


def test_a_streamed_call_has_openais_events_and_one_set_of_ids_in_stream_response_and_store(
        client: OpenAI) -> None:
    with client.responses.stream(model=MODEL, input=ASK, tools=[WEATHER], tool_choice="required",
                                 parallel_tool_calls=False, temperature=0, max_output_tokens=60) as stream:
        events = list(stream)
        final = stream.get_final_response()
    assert collapse_calls([e.type for e in events]) == CALL_EVENTS
    assert [e.sequence_number for e in events] == list(range(len(events)))
    (call,) = final.output
    assert call.type == "function_call" and call.name == "get_weather" and call.status == "completed"
    assert call.id is not None and call.id.startswith("fc_") and CALL_ID.fullmatch(call.call_id)
    assert json.loads(call.arguments)["city"]
    added = next(e for e in events if e.type == "response.output_item.added")
    assert added.item.id == call.id and added.item.call_id == call.call_id and added.item.arguments == ""
    deltas = [e for e in events if e.type == "response.function_call_arguments.delta"]
    assert {e.item_id for e in deltas} == {call.id} and "".join(e.delta for e in deltas) == call.arguments
    done = next(e for e in events if e.type == "response.function_call_arguments.done")
    assert done.item_id == call.id and done.arguments == call.arguments
    stored = client.responses.retrieve(final.id)
    assert stored.output[0].model_dump() == call.model_dump(exclude={"parsed_arguments"})
    replayed = list(client.responses.retrieve(final.id, stream=True))
    assert [e.type for e in replayed] == [e.type for e in events]
    assert replayed[-1].response.output[0].call_id == call.call_id


def test_a_named_function_is_called_once(client: OpenAI) -> None:
    response = client.responses.create(model=MODEL, input=ASK, tools=[WEATHER], temperature=0, max_output_tokens=40,
                                       tool_choice={"type": "function", "name": "get_weather"})
    assert response.status == "completed" and [o.type for o in response.output] == ["function_call"]
    assert response.tool_choice.type == "function" and response.tools[0].name == "get_weather"  # echoed
    assert set(json.loads(response.output[0].arguments)) == {"city"}


def test_tool_choice_none_answers_in_text(client: OpenAI) -> None:
    response = client.responses.create(model=MODEL, input=ASK, tools=[WEATHER], tool_choice="none", temperature=0,
                                       max_output_tokens=24)
    assert [o.type for o in response.output] == ["message"] and response.output_text


def test_parse_with_a_pydantic_tool_then_the_result_goes_back_chained(client: OpenAI) -> None:
    tool = openai.pydantic_function_tool(GetWeather, name="get_weather")
    first = client.responses.parse(model=MODEL, input=ASK, tools=[tool], tool_choice="required",
                                   parallel_tool_calls=False, temperature=0, max_output_tokens=40)
    (call,) = first.output
    assert call.type == "function_call" and isinstance(call.parsed_arguments, GetWeather)
    result = {"type": "function_call_output", "call_id": call.call_id, "output": "Sunny, 22 C"}
    second = client.responses.create(model=MODEL, previous_response_id=first.id, input=[result], tools=[WEATHER],
                                     temperature=0, max_output_tokens=24)
    assert second.status in ("completed", "incomplete") and second.output
    assert second.usage is not None and second.usage.input_tokens_details.cached_tokens > 0  # the first turn, cached
    (item,) = client.responses.input_items.list(second.id).data
    assert item.type == "function_call_output" and item.call_id == call.call_id and item.output == "Sunny, 22 C"


def test_calls_and_results_sent_whole_make_the_same_prompt_as_a_chain(client: OpenAI) -> None:
    call = {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city": "Paris"}'}
    result = {"type": "function_call_output", "call_id": "call_1", "output": "Sunny, 22 C"}
    response = client.responses.create(model=MODEL, input=[{"role": "user", "content": ASK}, call, result],
                                       tools=[WEATHER], temperature=0, max_output_tokens=16)
    assert response.output
    kinds = [i.type for i in client.responses.input_items.list(response.id, order="asc").data]
    assert kinds == ["message", "function_call", "function_call_output"]
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model=MODEL, input=[result], max_output_tokens=16)
    assert info.value.body["param"] == "input" and "call_1" in info.value.body["message"]


@pytest.mark.parametrize(("tools", "param"), [
    ([{"type": "web_search"}], "tools[0].type"),
    ([WEATHER, {"type": "file_search", "vector_store_ids": ["vs_1"]}], "tools[1].type"),
    ([{"type": "function", "name": "get weather"}], "tools[0].name"),
    ([WEATHER, WEATHER], "tools"),
])
def test_unsupported_and_bad_tools_are_400s_naming_them(client: OpenAI, tools: list[dict[str, Any]],
                                                        param: str) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model=MODEL, input=ASK, tools=tools, max_output_tokens=16)  # type: ignore[arg-type]
    assert info.value.body["param"] == param
