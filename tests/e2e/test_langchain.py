"""LangChain's OpenAI integration against the real server: structured output and a streamed tool call."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest
from langchain_core.messages import AIMessageChunk
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI

from tests.e2e.ssewire import MODEL
from tests.serverproc import ServerProcess

pytestmark = pytest.mark.e2e


class Person(pydantic.BaseModel):
    """A person."""

    name: str
    age: int


@tool
def get_weather(city: str) -> str:
    """Get the current weather in a city."""
    return f"It is sunny in {city}."


@pytest.fixture(scope="module")
def llm(server: ServerProcess) -> ChatOpenAI:
    return ChatOpenAI(base_url=server.base_url, api_key="sk-test", model=MODEL,  # type: ignore[arg-type]
                      temperature=0, max_tokens=120, max_retries=0, timeout=120)  # type: ignore[call-arg]


def test_with_structured_output_json_schema(llm: ChatOpenAI) -> None:
    person = llm.with_structured_output(Person, method="json_schema").invoke("Describe a person named Alice.")
    assert isinstance(person, Person)


@pytest.mark.parametrize("tool_choice", ["get_weather", "required"])
def test_streamed_bind_tools_chunks_add_up_to_a_tool_call(llm: ChatOpenAI, tool_choice: str) -> None:
    chunks = list(llm.bind_tools([get_weather], tool_choice=tool_choice).stream("What's the weather in Paris?"))
    assert len(chunks) > 3
    total: Any = chunks[0]
    for chunk in chunks[1:]:
        total = total + chunk
    assert isinstance(total, AIMessageChunk)
    assert total.tool_calls and total.tool_calls[0]["name"] == "get_weather"
    assert isinstance(total.tool_calls[0]["args"].get("city"), str)
    assert not total.invalid_tool_calls
    assert total.response_metadata.get("finish_reason") == "tool_calls"
