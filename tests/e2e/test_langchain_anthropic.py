"""LangChain's ``ChatAnthropic`` against the real server: a streamed answer and a streamed, bound tool call."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_anthropic import ChatAnthropic
from langchain_core.messages import AIMessageChunk
from langchain_core.tools import tool

from tests.e2e.ssewire import MODEL
from tests.serverproc import ServerProcess

pytestmark = pytest.mark.e2e


@tool
def get_weather(city: str) -> str:
    """Get the current weather in a city."""
    return f"It is sunny in {city}."


@pytest.fixture(scope="module")
def llm(server: ServerProcess) -> ChatAnthropic:
    return ChatAnthropic(base_url=server.url, api_key="sk-test", model=MODEL,  # type: ignore[call-arg]
                         temperature=0, max_tokens=40, max_retries=0, timeout=120)


def _joined(chunks: list[Any]) -> AIMessageChunk:
    total = chunks[0]
    for chunk in chunks[1:]:
        total = total + chunk
    assert isinstance(total, AIMessageChunk)
    return total


def test_streaming_adds_up_to_the_answer(llm: ChatAnthropic) -> None:
    chunks = list(llm.stream("Name three colors."))
    assert len(chunks) > 3
    total = _joined(chunks)
    assert total.text.strip()
    assert total.usage_metadata is not None and total.usage_metadata["output_tokens"] > 0
    assert total.response_metadata.get("stop_reason") in ("end_turn", "max_tokens")


def test_streamed_bind_tools_chunks_add_up_to_a_tool_call(llm: ChatAnthropic) -> None:
    chunks = list(llm.bind_tools([get_weather], tool_choice="get_weather").stream("What's the weather in Paris?"))
    total = _joined(chunks)
    assert total.tool_calls and total.tool_calls[0]["name"] == "get_weather"
    assert isinstance(total.tool_calls[0]["args"].get("city"), str)
    assert not total.invalid_tool_calls
    assert total.response_metadata.get("stop_reason") == "tool_use"
