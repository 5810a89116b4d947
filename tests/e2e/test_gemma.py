"""The second built-in model, Gemma 3 270M (base), through the Gemma turn format.

A smaller set than for SmolLM2: chat streaming works end to end, the turn markers never leak
into the text, streamed equals non-streamed, legacy completions work, and structured outputs and
tool calls hold at a 262k vocabulary. The first start may
assemble the GGUF (``running_server`` waits for /health with a generous deadline).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pydantic
import pytest
from openai import OpenAI

from tests.e2e.ssewire import chat_text, choice_chunks, completion_text, finish_reasons, read_stream
from tests.serverproc import ServerProcess, running_server

pytestmark = pytest.mark.e2e

MODEL = "gemma-3-270m"
MARKERS = ("<start_of_turn>", "<end_of_turn>", "<bos>", "<eos>")
CONVERSATION: list[dict[str, Any]] = [
    {"role": "system", "content": "You are a helpful assistant. Answer briefly."},
    {"role": "user", "content": "What is the capital of France?"},
    {"role": "assistant", "content": "The capital of France is Paris."},
    {"role": "user", "content": "And of Italy?"},
]


@pytest.fixture(scope="module")
def gemma() -> Iterator[ServerProcess]:
    with running_server("--model", MODEL) as process:
        yield process


@pytest.fixture(scope="module")
def http(gemma: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gemma.base_url, timeout=120) as raw:
        yield raw


@pytest.fixture(scope="module")
def client(gemma: ServerProcess) -> Iterator[OpenAI]:
    with OpenAI(base_url=gemma.base_url, api_key="sk-test", max_retries=0, timeout=120) as openai_client:
        yield openai_client


def test_model_is_listed(client: OpenAI) -> None:
    assert [m.id for m in client.models.list()] == [MODEL]


@pytest.mark.parametrize("messages", [
    [{"role": "user", "content": "What is the capital of France?"}],
    CONVERSATION,
], ids=["one-turn", "system-and-history"])
def test_chat_stream_through_the_turn_format(http: httpx.Client, messages: list[dict[str, Any]]) -> None:
    body = {"model": MODEL, "messages": messages, "temperature": 0, "max_tokens": 32}
    stream = read_stream(http, "/chat/completions", {**body, "stream_options": {"include_usage": True}})
    assert stream.status_code == 200
    assert stream.saw_done
    assert {c["object"] for c in stream.chunks} == {"chat.completion.chunk"}
    assert {c["model"] for c in stream.chunks} == {MODEL}
    role, *content, finish = choice_chunks(stream, 0)
    assert role["delta"]["role"] == "assistant" and role["delta"]["content"] == ""
    assert content, "no content chunk"
    for element in content:
        assert element["delta"].get("role") is None
        assert isinstance(element["delta"]["content"], str) and element["delta"]["content"]
        assert element["finish_reason"] is None
    assert finish["delta"] == {}
    assert finish["finish_reason"] in {"stop", "length"}
    text = chat_text(stream)
    assert text.strip()
    for marker in MARKERS:
        assert marker not in text, f"{marker} leaked into the text: {text!r}"
    usage = stream.chunks[-1]["usage"]
    assert stream.chunks[-1]["choices"] == []
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    if finish["finish_reason"] == "length":
        assert usage["completion_tokens"] == 32
    whole = http.post("/chat/completions", json=body).json()
    assert whole["choices"][0]["message"]["content"] == text
    assert whole["choices"][0]["finish_reason"] == finish["finish_reason"]
    assert whole["usage"]["prompt_tokens"] == usage["prompt_tokens"]


def test_history_is_in_the_prompt(http: httpx.Client) -> None:
    """The template renders every turn: the longer conversation has more prompt tokens."""
    def prompt_tokens(messages: list[dict[str, Any]]) -> int:
        body = {"model": MODEL, "messages": messages, "temperature": 0, "max_tokens": 1}
        tokens: int = http.post("/chat/completions", json=body).json()["usage"]["prompt_tokens"]
        return tokens

    short = prompt_tokens(CONVERSATION[-1:])
    full = prompt_tokens(CONVERSATION)
    assert full > short + 15


def test_completions_stream_equals_non_streamed(http: httpx.Client) -> None:
    body = {"model": MODEL, "prompt": "1, 2, 3, 4, 5,", "temperature": 0, "max_tokens": 12}
    stream = read_stream(http, "/completions", body)
    assert stream.status_code == 200 and stream.saw_done
    assert {c["object"] for c in stream.chunks} == {"text_completion"}
    text = completion_text(stream)
    assert text.strip()
    assert finish_reasons(stream) == {0: "length"}
    whole = http.post("/completions", json=body).json()
    assert whole["object"] == "text_completion"
    assert whole["choices"][0]["text"] == text
    assert whole["usage"]["completion_tokens"] == 12


def test_openai_client_chat(client: OpenAI) -> None:
    response = client.chat.completions.create(model=MODEL, messages=CONVERSATION, temperature=0, max_tokens=16)
    content = response.choices[0].message.content
    assert content and not any(marker in content for marker in MARKERS)
    stream = client.chat.completions.create(model=MODEL, messages=CONVERSATION, temperature=0, max_tokens=16,
                                            stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream) == content


def test_turn_markers_in_user_text_stay_text(http: httpx.Client) -> None:
    """``<end_of_turn>`` typed by a user is plain text (several tokens), not Gemma's control token."""
    def prompt_tokens(content: str) -> int:
        body = {"model": MODEL, "messages": [{"role": "user", "content": content}], "max_tokens": 1}
        tokens: int = http.post("/chat/completions", json=body).json()["usage"]["prompt_tokens"]
        return tokens

    for marker in ("<end_of_turn>", "<start_of_turn>"):
        assert prompt_tokens(f"a {marker} b") >= prompt_tokens(f"a {marker[:-1]} b"), marker


# Structured outputs and tool calls at a 262k vocabulary (a smaller set than SmolLM2's)

class City(pydantic.BaseModel):
    name: str
    country: str


WEATHER: dict[str, Any] = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


def test_parse_with_a_pydantic_model(client: OpenAI) -> None:
    completion = client.chat.completions.parse(
        model=MODEL, messages=[{"role": "user", "content": "Name a large city and its country."}],
        response_format=City, temperature=0, max_tokens=60)
    assert completion.choices[0].finish_reason == "stop"
    assert isinstance(completion.choices[0].message.parsed, City)


def test_streamed_required_call_shape_and_arguments(http: httpx.Client) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "What's the weather in Rome?"}],
            "tools": [WEATHER], "tool_choice": "required", "parallel_tool_calls": False, "temperature": 0,
            "max_tokens": 60}
    stream = read_stream(http, "/chat/completions", body)
    role, opening, *fragments, finish = choice_chunks(stream, 0)
    assert role["delta"] == {"role": "assistant", "content": None}
    (call,) = opening["delta"]["tool_calls"]
    assert call["function"] == {"name": "get_weather", "arguments": ""} and call["id"].startswith("call_")
    assert fragments and all(set(f["delta"]["tool_calls"][0]) == {"index", "function"} for f in fragments)
    arguments = "".join(f["delta"]["tool_calls"][0]["function"]["arguments"] for f in fragments)
    assert finish == {**finish, "delta": {}, "finish_reason": "tool_calls"}
    assert set(json.loads(arguments)) == {"city"}


def test_named_function_non_streamed(client: OpenAI) -> None:
    response = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Weather in Oslo?"}], tools=[WEATHER],  # type: ignore
        tool_choice={"type": "function", "function": {"name": "get_weather"}}, temperature=0, max_tokens=40)
    (call,) = response.choices[0].message.tool_calls or []
    assert response.choices[0].finish_reason == "tool_calls" and response.choices[0].message.content is None
    assert isinstance(json.loads(call.function.arguments)["city"], str)  # type: ignore[union-attr]
