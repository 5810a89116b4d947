"""Structured outputs on the default model, through the official client and on the raw wire.

``response_format`` json_schema (what ``chat.completions.parse`` sends) and json_object: the output is
valid by construction, streams as ordinary content deltas, and a schema the server cannot enforce is a
400 naming ``response_format``. Greedy, one request at a time.
"""

from __future__ import annotations

import enum
import json
import re
from typing import Any

import httpx
import openai
import pydantic
import pytest
from openai import OpenAI

from tests.e2e.ssewire import MODEL, chat_text, choice_chunks, finish_reasons, read_stream

pytestmark = pytest.mark.e2e


class Person(pydantic.BaseModel):
    name: str
    age: int
    city: str


class Unit(enum.StrEnum):
    celsius = "celsius"
    fahrenheit = "fahrenheit"


class Place(pydantic.BaseModel):
    city: str
    country: str | None


class Report(pydantic.BaseModel):
    """Nested model, an enum, an optional field: ``$defs``, ``$ref`` and ``anyOf`` in the strict schema."""

    location: Place
    unit: Unit
    temperature: float


def schema_format(model: type[pydantic.BaseModel]) -> dict[str, Any]:
    """The response_format ``parse()`` sends for ``model``."""
    from openai.lib._pydantic import to_strict_json_schema

    return {"type": "json_schema", "json_schema": {"name": model.__name__, "strict": True,
                                                   "schema": to_strict_json_schema(model)}}


def no_whitespace_runs(text: str) -> bool:
    return re.search(r"\s{26,}", text) is None


@pytest.mark.parametrize(("model", "prompt"), [
    (Person, "Describe a person named Alice."),
    (Person, "Give me a JSON object describing Bob, 40 years old."),
    (Report, "Weather report for Paris: 21 degrees celsius."),
    (Report, "It is 70F in Austin, Texas. Report it."),
])
def test_parse_gives_a_parsed_object(client: OpenAI, model: type[pydantic.BaseModel], prompt: str) -> None:
    completion = client.chat.completions.parse(model=MODEL, messages=[{"role": "user", "content": prompt}],
                                               response_format=model, max_tokens=200, temperature=0)
    choice = completion.choices[0]
    assert choice.finish_reason == "stop"
    assert isinstance(choice.message.parsed, model)
    assert choice.message.refusal is None
    assert choice.message.content is not None and no_whitespace_runs(choice.message.content)


def test_streamed_schema_answer_arrives_in_pieces_and_joins_to_a_valid_instance(http: httpx.Client) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Weather report for Paris: 21 degrees."}],
            "temperature": 0, "max_tokens": 200, "response_format": schema_format(Report)}
    stream = read_stream(http, "/chat/completions", body)
    chunks = choice_chunks(stream, 0)
    assert chunks[0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    content = [c["delta"]["content"] for c in chunks[1:-1]]
    assert len(content) >= 5 and all(content)
    assert chunks[-1]["delta"] == {} and finish_reasons(stream) == {0: "stop"}
    text = chat_text(stream)
    assert text.startswith("{")  # no whitespace before the value (openai-python#2082)
    Report.model_validate_json(text)


def test_stream_helper_parses_the_content(client: OpenAI) -> None:
    with client.chat.completions.stream(model=MODEL, messages=[{"role": "user", "content": "Describe Carol."}],
                                        response_format=Person, max_tokens=200, temperature=0) as stream:
        kinds = {event.type for event in stream}
        final = stream.get_final_completion()
    assert {"content.delta", "content.done"} <= kinds
    assert isinstance(final.choices[0].message.parsed, Person)


def test_json_mode_gives_a_json_object(client: OpenAI) -> None:
    response = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Give me a JSON object with the name and age of Bob."}],
        response_format={"type": "json_object"}, max_tokens=100, temperature=0)
    assert response.choices[0].finish_reason == "stop"
    assert isinstance(json.loads(response.choices[0].message.content or ""), dict)


def test_n2_usage_and_logprobs_with_a_schema(http: httpx.Client) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Describe a person."}], "n": 2,
            "temperature": 0.9, "seed": 11, "max_tokens": 120, "logprobs": True, "top_logprobs": 2,
            "stream_options": {"include_usage": True}, "response_format": schema_format(Person)}
    stream = read_stream(http, "/chat/completions", body)
    for index in (0, 1):
        text = chat_text(stream, index)
        if finish_reasons(stream)[index] == "stop":
            Person.model_validate_json(text)
        entries = [e for c in choice_chunks(stream, index) if c["logprobs"] for e in c["logprobs"]["content"]]
        assert bytes(b for e in entries for b in e["bytes"]).decode() == text
        assert all(len(e["top_logprobs"]) == 2 for e in entries)
    usage = stream.chunks[-1]["usage"]
    assert stream.chunks[-1]["choices"] == [] and usage["completion_tokens"] > 0


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(("schema", "words"), [
    ({"type": "array", "items": {"type": "string"}, "uniqueItems": True}, "uniqueItems"),
    ({"type": "object", "properties": {"a": {"$ref": "https://example.com/a.json"}}}, "ref"),
])
def test_a_schema_that_cannot_be_enforced_is_a_400(client: OpenAI, stream: bool, schema: dict[str, Any],
                                                    words: str) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=4, stream=stream,
            response_format={"type": "json_schema", "json_schema": {"name": "bad", "schema": schema}})
    assert info.value.param == "response_format"
    assert info.value.code is None
    assert "Invalid schema for response_format 'bad'" in info.value.message and words in info.value.message


def test_an_unknown_response_format_type_is_a_400(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=4,
                                       response_format={"type": "yaml"})  # type: ignore[typeddict-item]
    assert info.value.param == "response_format.type"
