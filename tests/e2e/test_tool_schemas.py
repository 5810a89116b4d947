"""Tool and answer schemas as the official helpers write them, on the default model through the official client.

``openai.pydantic_function_tool(M)`` and ``.parse(response_format=M)`` put every enum and nested model of
``M`` in ``$defs`` and point at it with ``$ref``; the server embeds a tool's parameters inside the call's
grammar, where those references must still resolve. Each shape here (enum, nested model, ``Optional``,
``list[Model]``, ``Literal``, ``dict[str, int]``, defaults, descriptions, a recursive model) must come
back as a parsed instance of ``M``, through Chat Completions and the Responses API. Greedy, one call each.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, Literal, Optional

import openai
import pydantic
import pytest
from openai import OpenAI

from tests.e2e.ssewire import MODEL

pytestmark = pytest.mark.e2e


class Unit(str, Enum):  # noqa: UP042 (what users write)
    celsius = "celsius"
    fahrenheit = "fahrenheit"


class GetWeather(pydantic.BaseModel):
    """Get the weather in a city."""

    city: str
    unit: Unit


class Place(pydantic.BaseModel):
    city: str = pydantic.Field(description="The city's name")
    country: Optional[str]  # noqa: UP045 (the shape pydantic writes for Optional, on purpose)


class Trip(pydantic.BaseModel):
    """Plan a trip: where from, where to, and the stops on the way."""

    start: Place
    stops: list[Place]
    mode: Literal["train", "car"]
    unit: Unit = Unit.celsius


class Inventory(pydantic.BaseModel):
    """Record how many of each item there are."""

    counts: dict[str, int]
    note: str | None = None


class Node(pydantic.BaseModel):
    """A tree of named nodes."""

    name: str
    children: list[Node]


SHAPES = {
    GetWeather: "What's the weather like in Paris?",
    Trip: "Plan a trip from Paris, through Rome and Barcelona.",
    Inventory: "I have 3 apples and 2 pears. Record them.",
    Node: "Make a tree: a root named 'a' with no children.",
}
"""An enum; nested models with Optional, list[Model], Literal, a default and descriptions; dict[str, int]; recursion.

Each with a request the 135M model finishes its call for (asked for more, it nests or repeats keys until
``max_tokens``): the shapes' enforcement is what is tested here, the tests of grammars cover deep recursion.
"""

ASK = [{"role": "user", "content": SHAPES[Trip]}]


def asked(model: type[pydantic.BaseModel]) -> list[dict[str, str]]:
    """The request's messages for a shape."""
    return [{"role": "user", "content": SHAPES[model]}]


@pytest.mark.parametrize("model", SHAPES, ids=lambda m: m.__name__)
def test_stream_helper_parses_each_shape_of_pydantic_tool(client: OpenAI, model: type[pydantic.BaseModel]) -> None:
    with client.chat.completions.stream(model=MODEL, messages=asked(model),  # type: ignore[arg-type]
                                        tools=[openai.pydantic_function_tool(model)], tool_choice="required",
                                        parallel_tool_calls=False, temperature=0, max_tokens=200) as stream:
        final = stream.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls or []
    assert call.function.name == model.__name__
    assert isinstance(call.function.parsed_arguments, model)


def test_two_tools_defining_the_same_name_differently_each_get_their_own(client: OpenAI) -> None:
    class Item(pydantic.BaseModel):
        label: str

    class Tag(pydantic.BaseModel):
        items: list[Item]

    Item2 = pydantic.create_model("Item", count=(int, ...))  # another "Item", another shape
    Count = pydantic.create_model("Count", items=(list[Item2], ...))  # type: ignore[valid-type]
    tools = [openai.pydantic_function_tool(Tag), openai.pydantic_function_tool(Count)]
    defs = [t["function"]["parameters"]["$defs"]["Item"] for t in tools]
    assert defs[0] != defs[1]  # the clash this test is about
    for prompt, wanted in (("Tag the photo: beach.", Tag), ("Count 2 cats.", Count)):
        with client.chat.completions.stream(model=MODEL, messages=[{"role": "user", "content": prompt}],
                                            tools=tools, tool_choice="required", parallel_tool_calls=False,
                                            temperature=0, max_tokens=100) as stream:
            final = stream.get_final_completion()
        (call,) = final.choices[0].message.tool_calls or []
        assert call.function.name == wanted.__name__
        assert isinstance(call.function.parsed_arguments, wanted)


@pytest.mark.parametrize("model", [GetWeather, Trip, Node], ids=lambda m: m.__name__)
def test_responses_function_tools_with_defs_are_enforced(client: OpenAI, model: type[pydantic.BaseModel]) -> None:
    tool = openai.pydantic_function_tool(model)
    response = client.responses.parse(model=MODEL, input=SHAPES[model], tools=[tool],  # type: ignore[list-item]
                                      tool_choice="required", parallel_tool_calls=False, temperature=0,
                                      max_output_tokens=200)
    (call,) = response.output
    assert call.type == "function_call" and call.name == model.__name__
    assert isinstance(call.parsed_arguments, model)


EMPTY_TREE = "Output a tree node called root with an empty list of children."


@pytest.mark.parametrize(("model", "prompt"), [(Trip, SHAPES[Trip]), (Node, EMPTY_TREE)], ids=["Trip", "Node"])
def test_parse_with_nested_models_gives_the_model(client: OpenAI, model: type[pydantic.BaseModel], prompt: str) -> None:
    response = client.chat.completions.parse(model=MODEL, messages=[{"role": "user", "content": prompt}],
                                             response_format=model, temperature=0, max_tokens=200)
    assert response.choices[0].finish_reason == "stop"
    assert isinstance(response.choices[0].message.parsed, model)


def test_a_ref_that_cannot_resolve_is_a_400_naming_the_tool(client: OpenAI) -> None:
    parameters: dict[str, Any] = {"type": "object", "properties": {"a": {"$ref": "#/$defs/Missing"}}}
    with pytest.raises(openai.BadRequestError) as info:
        tool = {"type": "function", "function": {"name": "f", "parameters": parameters}}
        client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=4, tools=[tool])  # type: ignore
    assert info.value.param == "tools[0].function.parameters" and "Missing" in info.value.message
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model=MODEL, input="hi", max_output_tokens=16,
                                tools=[{"type": "function", "name": "f", "parameters": parameters,  # type: ignore
                                        "strict": False}])
    assert info.value.param == "tools[0].parameters" and "Missing" in info.value.message
