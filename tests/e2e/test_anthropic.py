"""The official ``anthropic`` SDK against the real server (the session's, on the default model, addressed by an
alias): create and stream, stop sequences, max_tokens, a tool round trip with ``any`` and a named tool,
structured output through ``messages.parse``, ``count_tokens`` against ``message_start``, Anthropic's errors,
thinking blocks in history. Greedy (``temperature`` 0 through ``extra_body``: the 2.x SDK has no such
argument) and short."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pydantic
import pytest

from tests.e2e.ssewire import MODEL
from tests.serverproc import ServerProcess

pytestmark = pytest.mark.e2e

GREEDY = {"temperature": 0}
WEATHER: Any = {"name": "get_weather", "description": "Get the current weather in a city.",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
ASK = [{"role": "user", "content": "What's the weather in Paris?"}]


@pytest.fixture(scope="module")
def claude(server: ServerProcess) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=server.url, api_key="sk-test", max_retries=0, timeout=120) as client:
        yield client


def test_create_and_stream_give_the_same_text_with_the_events_in_order(claude: anthropic.Anthropic) -> None:
    question: Any = [{"role": "user", "content": "Name three colors."}]
    whole = claude.messages.create(model=MODEL, max_tokens=12, messages=question, extra_body=GREEDY)
    assert whole.id.startswith("msg_") and whole.model == MODEL and whole.type == "message"
    assert whole.stop_reason in ("end_turn", "max_tokens") and whole.usage.output_tokens <= 12
    with claude.messages.stream(model=MODEL, max_tokens=12, messages=question, extra_body=GREEDY) as stream:
        kinds = []
        pieces = []
        for event in stream:
            kinds.append(event.type)
            if event.type == "message_start":
                start_usage = event.message.usage
            elif event.type == "text":
                pieces.append(event.text)
            elif event.type == "message_delta":
                delta_usage = event.usage
        final = stream.get_final_message()
    text = "".join(block.text for block in final.content if block.type == "text")
    assert "".join(pieces) == text == whole.content[0].text  # type: ignore[union-attr]
    raw = [k for k in kinds if k not in ("text",)]
    assert raw[0] == "message_start" and raw[1] == "content_block_start"
    assert raw[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(raw[2:-3]) == {"content_block_delta"}
    prompt = start_usage.input_tokens + (start_usage.cache_read_input_tokens or 0)
    assert prompt == whole.usage.input_tokens + (whole.usage.cache_read_input_tokens or 0) > 0
    assert start_usage.output_tokens == 0 and delta_usage.output_tokens == final.usage.output_tokens > 0


def test_a_stop_sequence_never_reaches_the_client(claude: anthropic.Anthropic) -> None:
    ask: Any = [{"role": "user", "content": "Write a sentence about the sea."}]
    message = claude.messages.create(model=MODEL, max_tokens=30, messages=ask, stop_sequences=[" "],
                                     extra_body=GREEDY)
    assert message.stop_reason == "stop_sequence" and message.stop_sequence == " "
    assert all(" " not in block.text for block in message.content if block.type == "text")
    with claude.messages.stream(model=MODEL, max_tokens=30, messages=ask, stop_sequences=[" "],
                                extra_body=GREEDY) as stream:
        assert " " not in "".join(stream.text_stream)
        assert stream.get_final_message().stop_sequence == " "


def test_max_tokens_ends_the_message(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(model=MODEL, max_tokens=3, messages=[{"role": "user", "content": "Tell a story."}],
                                     extra_body=GREEDY)
    assert message.stop_reason == "max_tokens" and message.usage.output_tokens == 3


def test_a_tool_round_trip_with_tool_choice_any_streamed_through_the_sdks_helpers(claude: anthropic.Anthropic) -> None:
    with claude.messages.stream(model=MODEL, max_tokens=60, messages=ASK, tools=[WEATHER],
                                tool_choice={"type": "any", "disable_parallel_tool_use": True}) as stream:
        fragments = []
        stopped = []
        for event in stream:
            if event.type == "content_block_start":
                assert event.content_block.type == "tool_use" and event.content_block.input == {}
            elif event.type == "input_json":
                fragments.append(event.partial_json)
            elif event.type == "content_block_stop":
                stopped.append(event.content_block)
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use" and len(fragments) > 1
    (call,) = final.content
    assert call.type == "tool_use" and call.id.startswith("toolu_") and call.name == "get_weather"
    assert json.loads("".join(fragments)) == call.input and isinstance(call.input["city"], str)
    assert stopped[0].input == call.input  # the SDK's snapshot at content_block_stop holds the parsed input
    answer = claude.messages.create(
        model=MODEL, max_tokens=24, tools=[WEATHER], tool_choice={"type": "none"}, extra_body=GREEDY,
        messages=[*ASK, {"role": "assistant", "content": final.content},  # type: ignore[list-item]
                  {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id,
                                                "content": [{"type": "text", "text": "Sunny, 24 C"}]}]}])
    assert answer.content and answer.content[0].type == "text" and answer.content[0].text.strip()
    assert answer.stop_reason in ("end_turn", "max_tokens")


def test_a_named_tool_is_called_with_input_valid_against_its_schema(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(model=MODEL, max_tokens=60, messages=ASK, tools=[WEATHER],
                                     tool_choice={"type": "tool", "name": "get_weather"})
    calls = [block for block in message.content if block.type == "tool_use"]
    assert message.stop_reason == "tool_use" and calls[0].name == "get_weather"
    assert isinstance(calls[0].input, dict) and isinstance(calls[0].input.get("city"), str)


class Person(pydantic.BaseModel):
    """A person."""

    name: str
    age: int


def test_messages_parse_gives_a_parsed_object(claude: anthropic.Anthropic) -> None:
    parsed = claude.messages.parse(model=MODEL, max_tokens=40, output_format=Person,
                                   messages=[{"role": "user", "content": "Describe Alice, aged 30."}])
    assert isinstance(parsed.parsed_output, Person)


def _prompt_size(claude: anthropic.Anthropic, **fields: Any) -> int:
    with claude.messages.create(model=MODEL, max_tokens=1, stream=True, **fields) as events:
        start = next(iter(events))
        assert start.type == "message_start"
        usage = start.message.usage
        return usage.input_tokens + (usage.cache_read_input_tokens or 0)


@pytest.mark.parametrize("fields", [
    {"messages": [{"role": "user", "content": "Hello"}]},
    {"messages": [{"role": "user", "content": "Hello"}], "system": "You are terse."},
    {"messages": ASK, "tools": [WEATHER]},
    {"messages": ASK, "tools": [WEATHER], "tool_choice": {"type": "tool", "name": "get_weather"},
     "system": [{"type": "text", "text": "Use tools."}]},
    {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
                  {"role": "user", "content": [{"type": "text", "text": "Again"}]}]},
])
def test_count_tokens_equals_message_starts_prompt_size(claude: anthropic.Anthropic, fields: dict[str, Any]) -> None:
    counted = claude.messages.count_tokens(model=MODEL, **fields).input_tokens
    assert counted == _prompt_size(claude, **fields) > 0
    assert counted == _prompt_size(claude, **fields)  # again, now served from the prompt cache


def test_errors_are_in_anthropics_envelope(claude: anthropic.Anthropic, server: ServerProcess) -> None:
    missing = httpx.post(server.url + "/v1/messages", timeout=60,
                         json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]})
    assert missing.status_code == 400
    assert missing.json()["type"] == "error" and missing.json()["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in missing.json()["error"]["message"]
    with pytest.raises(anthropic.BadRequestError) as image:
        claude.messages.create(model=MODEL, max_tokens=5, messages=[{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}]}])
    assert image.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    assert "'image'" in image.value.body["error"]["message"]  # type: ignore[index]
    with pytest.raises(anthropic.NotFoundError) as unknown:
        claude.messages.create(model="claude-unknown", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
    assert unknown.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]


def test_thinking_blocks_in_history_are_accepted(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(
        model=MODEL, max_tokens=8, extra_body=GREEDY, thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[{"role": "user", "content": "What is 2+2?"},
                  {"role": "assistant", "content": [{"type": "thinking", "thinking": "2+2=4", "signature": "c2ln"},
                                                    {"type": "redacted_thinking", "data": "b3BhcXVl"},
                                                    {"type": "text", "text": "4"}]},
                  {"role": "user", "content": "And 3+3?"}])
    assert message.content and message.content[0].type == "text"
