"""Tools into the prompt, and earlier calls and results back into text every template can render."""

from __future__ import annotations

import json
from typing import Any

from streamserve.prompting.structured import FunctionTool, OutputSpec, ToolChoice
from streamserve.prompting.templates import ChatTemplate, choose_template, render_chat
from streamserve.prompting.tool_prompt import render_call, tool_messages, tools_prompt

WEATHER = FunctionTool("get_weather", "Weather in a city",
                       {"type": "object", "properties": {"city": {"type": "string"}}})
SPEC = OutputSpec(tools=(WEATHER,))
HISTORY: list[dict[str, Any]] = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Weather in Paris and Rome?"},
    {"role": "assistant", "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
        {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": "not json"}},
    ]},
    {"role": "tool", "tool_call_id": "call_1", "content": "21C"},
    {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "18C"}]},
]


def test_tools_join_the_system_message_and_history_becomes_text() -> None:
    messages, tools = tool_messages(HISTORY, SPEC, native=False)
    assert tools is None
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[0]["content"].startswith("Be brief.\n\n") and '"name": "get_weather"' in messages[0]["content"]
    assert messages[2]["content"] == (
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n'
        '<tool_call>\n{"name": "get_weather", "arguments": "not json"}\n</tool_call>'
    )
    assert "tool_calls" not in messages[2]
    assert messages[3]["content"] == "<tool_response>\n21C\n</tool_response>\n<tool_response>\n18C\n</tool_response>"


def test_without_a_system_message_one_is_added_and_none_leaves_tools_out() -> None:
    messages, _ = tool_messages([{"role": "user", "content": "hi"}], SPEC, native=False)
    assert messages[0] == {"role": "system", "content": tools_prompt(SPEC)}
    none = OutputSpec(tools=(WEATHER,), tool_choice=ToolChoice("none"))
    messages, _ = tool_messages(HISTORY, none, native=False)
    assert messages[0]["content"] == "Be brief."
    assert messages[2]["content"].startswith("<tool_call>")


def test_the_prompt_says_one_call_when_parallel_calls_are_off() -> None:
    assert "only one" in tools_prompt(OutputSpec(tools=(WEATHER,), parallel_tool_calls=False))
    assert "one or more" in tools_prompt(SPEC)


def test_render_call_writes_arguments_as_json() -> None:
    assert json.loads(render_call("f", '{"a": [1]}').split("\n")[1]) == {"name": "f", "arguments": {"a": [1]}}


HERMES = (
    "{% if tools %}<|im_start|>system\n<tools>{% for t in tools %}{{ t.function.name }};{% endfor %}</tools>"
    "<tool_call><|im_end|>\n{% endif %}"
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}"
    "{% for c in m.tool_calls or [] %}[{{ c.function.name }} {{ c.function.arguments.city }}]{% endfor %}"
    "<|im_end|>\n{% endfor %}<|im_start|>assistant\n"
)


def jinja(source: str) -> ChatTemplate:
    return choose_template(override_text=source, override_name="t.jinja", gguf_template=None, architecture="llama")


def test_a_template_with_its_own_tools_support_renders_them_itself() -> None:
    template = jinja(HERMES)
    assert template.native_tools
    messages, tools = tool_messages(HISTORY, SPEC, native=True)
    assert tools == [{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                                       "parameters": WEATHER.parameters}}]
    assert [m["role"] for m in messages] == [m["role"] for m in HISTORY]
    text = render_chat(template, messages, bos_text="", eos_text="", tools=tools)
    assert "<tools>get_weather;</tools>" in text and "[get_weather Paris]" in text
    assert not jinja("{{ messages }}").native_tools
