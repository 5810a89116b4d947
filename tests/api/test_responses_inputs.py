"""Responses input items, conversation rebuilding, truncation and request checks, with a one-token-per-character
tokenizer and the plain transcript template."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
import pytest

from streamserve.api.errors import APIError, ContextLengthExceededError
from streamserve.api.params import Limits
from streamserve.api.protocol import ResponseCreateRequest
from streamserve.api.responses import inputs, request
from streamserve.prompting.errors import RequestError
from streamserve.prompting.templates import TRANSCRIPT
from streamserve.store import ChainLink, StoredItem, StoredResponse


class CharTokenizer:
    add_bos = False
    bos_text = ""
    eos_text = ""
    control_texts: frozenset[str] = frozenset()

    def tokenize(self, text: str, *, add_special: bool, parse_special: bool) -> list[int]:
        return [ord(c) % 256 for c in text]

    def token_bytes(self, token_id: int) -> bytes:
        return bytes([token_id])

    def is_eog(self, token_id: int) -> bool:
        return False


LIMITS = Limits(max_model_len=400, n_vocab=256, max_n=1, max_stop_strings=4, max_tokens_default=None, max_sequences=8)


def param_of(call: Any) -> str | None:
    with pytest.raises((APIError, RequestError)) as info:
        call()
    return info.value.param


def test_a_string_is_one_user_message_stored_as_input_text() -> None:
    (item,) = inputs.parse_input("Hello")
    assert item.message == {"role": "user", "content": "Hello"}
    assert item.item == {"id": item.id, "type": "message", "role": "user",
                         "content": [{"type": "input_text", "text": "Hello"}], "status": "completed"}
    assert item.id.startswith("msg_")


def test_items_keep_their_ids_roles_and_joined_text() -> None:
    items = inputs.parse_input([
        {"role": "developer", "content": "Rules."},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "a"},
                                                         {"type": "input_text", "text": "b"}]},
        {"id": "msg_keep", "role": "assistant", "content": [{"type": "output_text", "text": "c", "annotations": []},
                                                            {"type": "refusal", "refusal": "no"}]},
    ])
    assert [i.message for i in items] == [{"role": "developer", "content": "Rules."},
                                          {"role": "user", "content": "ab"}, {"role": "assistant", "content": "c"}]
    assert items[2].id == "msg_keep" and items[2].item["content"][0]["type"] == "output_text"


@pytest.mark.parametrize(("value", "param"), [
    ([], "input"),
    ([{"role": "tool", "content": "x"}], "input[0].role"),
    ([{"role": "user", "content": 5}], "input[0].content"),
    ([{"role": "user", "content": "ok"}, {"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}],
     "input[1].content[0]"),
    ([{"role": "user", "content": [{"type": "input_text"}]}], "input[0].content[0]"),
    ([{"type": "function_call", "name": "f", "arguments": "{}"}], "input[0].call_id"),
    ([{"type": "function_call_output", "call_id": "c", "output": 3}], "input[0].output"),
    ([{"type": "function_call_output", "call_id": "c", "output": [{"type": "input_image"}]}], "input[0].output[0]"),
    ([{"type": "item_reference", "id": "msg_1"}], "input[0].type"),
])
def test_bad_items_are_400s_naming_their_path(value: Any, param: str) -> None:
    assert param_of(lambda: inputs.parse_input(value)) == param


def test_conversation_is_each_responses_input_then_output_oldest_first() -> None:
    def link(rid: str, said: str, answer: str) -> ChainLink:
        (item,) = inputs.parse_input(said)
        body = {"output": [{"type": "message", "role": "assistant",
                            "content": [{"type": "output_text", "text": answer, "annotations": []}]}]}
        record = StoredResponse(rid, 0.0, "completed", False, None, orjson.dumps(body), 0.0, False, True)
        return ChainLink(record, [StoredItem(item.id, orjson.dumps(item.item))])

    messages = inputs.conversation([link("a", "one", "1"), link("b", "two", "2")])
    assert messages == [{"role": "user", "content": "one"}, {"role": "assistant", "content": "1"},
                        {"role": "user", "content": "two"}, {"role": "assistant", "content": "2"}]


def history(n: int, size: int) -> list[dict[str, str]]:
    return [{"role": "user" if i % 2 == 0 else "assistant", "content": f"{i}:" + "x" * size} for i in range(n)]


def test_truncation_disabled_refuses_and_auto_drops_only_what_it_must() -> None:
    turns = history(9, 60)  # about 9 x 75 characters: over the 400-token context
    with pytest.raises(ContextLengthExceededError) as info:
        inputs.build_prompt(TRANSCRIPT, CharTokenizer(), LIMITS, instructions="Be nice.", history=turns,
                            max_output_tokens=50, truncation="disabled")
    assert info.value.param == "input"
    prompt = inputs.build_prompt(TRANSCRIPT, CharTokenizer(), LIMITS, instructions="Be nice.", history=turns,
                                 max_output_tokens=50, truncation="auto")
    assert len(prompt.ids) + 50 <= LIMITS.max_model_len and prompt.max_tokens == 50
    text = bytes(prompt.ids).decode()
    assert text.startswith("System: Be nice.") and "8:" in text and f"{prompt.dropped - 1}:" not in text
    with pytest.raises(ContextLengthExceededError):  # one fewer dropped item would not fit
        inputs.build_prompt(TRANSCRIPT, CharTokenizer(), LIMITS, instructions="Be nice.",
                            history=turns[prompt.dropped - 1:], max_output_tokens=50, truncation="disabled")


def test_auto_without_max_output_tokens_keeps_a_quarter_of_the_context_for_the_answer() -> None:
    prompt = inputs.build_prompt(TRANSCRIPT, CharTokenizer(), LIMITS, instructions=None, history=history(9, 40),
                                 max_output_tokens=None, truncation="auto")
    assert prompt.dropped > 0 and LIMITS.max_model_len - len(prompt.ids) >= LIMITS.max_model_len // 4
    assert prompt.max_tokens == LIMITS.max_model_len - len(prompt.ids)


def test_auto_never_drops_the_last_item() -> None:
    with pytest.raises(ContextLengthExceededError):
        inputs.build_prompt(TRANSCRIPT, CharTokenizer(), LIMITS, instructions=None,
                            history=[{"role": "user", "content": "y" * 500}], max_output_tokens=16, truncation="auto")


def body(**fields: Any) -> ResponseCreateRequest:
    return ResponseCreateRequest.model_validate({"model": "m", "input": "Hi", **fields})


@pytest.mark.parametrize(("fields", "param"), [
    ({"max_output_tokens": 15}, "max_output_tokens"),
    ({"background": True, "store": False}, "store"),
    ({"input": None}, "input"),
    ({"prompt": {"id": "pmpt_1"}}, "prompt"),
    ({"tools": [{"type": "file_search"}]}, "tools[0].type"),
    ({"tool_choice": {"type": "function", "name": "f"}}, "tool_choice"),
    ({"tools": [{"type": "function", "name": "bad name"}]}, "tools[0].name"),
    ({"tools": [{"type": "function", "name": "f", "parameters": {"type": "array"}}]}, "tools[0].parameters"),
    ({"tools": [{"type": "function", "name": "f"}], "tool_choice": {"type": "function", "name": "g"}}, "tool_choice"),
    ({"tools": [{"type": "function", "name": "f"}], "tool_choice": {"type": "web_search_preview"}},
     "tool_choice.type"),
    ({"text": {"format": {"type": "json_schema", "name": "no spaces", "schema": {}}}}, "text.format.name"),
    ({"text": {"format": {"type": "json_schema", "name": "n", "schema": {"type": "array", "uniqueItems": True}}}},
     "text.format"),
    ({"text": {"format": {"type": "yaml"}}}, "text.format.type"),
    ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
    ({"metadata": {"k": "v" * 513}}, "metadata.k"),
])
def test_request_checks(fields: dict[str, Any], param: str) -> None:
    assert param_of(lambda: request.check(body(**fields))) == param


def test_accepted_requests_echo_openais_defaults() -> None:
    accepted = body(max_output_tokens=16, tool_choice="none", text={"format": {"type": "text"}},
                    reasoning={"effort": "high"}, include=["message.output_text.logprobs"], top_logprobs=3)
    request.check(accepted)
    fields = request.echo_fields(accepted)
    assert fields["temperature"] == 1.0 and fields["top_p"] == 1.0 and fields["truncation"] == "disabled"
    assert fields["store"] is True and fields["tool_choice"] == "none" and fields["top_logprobs"] == 3
    params = request.sampling(accepted, 16, frozenset({7}))
    assert params.logprobs == 3 and params.max_tokens == 16 and params.stop_token_ids == frozenset({7})
    assert request.sampling(body(), 16, frozenset()).logprobs is None


def test_function_call_items_become_one_assistant_turn_and_their_outputs_tool_messages() -> None:
    items = inputs.parse_input([
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city": "Paris"}'},
        {"type": "function_call", "id": "fc_kept", "call_id": "call_2", "name": "get_weather",
         "arguments": '{"city": "Rome"}'},
        {"type": "function_call_output", "call_id": "call_1", "output": "Sunny"},
        {"type": "function_call_output", "call_id": "call_2", "output": [{"type": "input_text", "text": "Rain"}]},
    ])
    assert items[1].item["type"] == "function_call" and items[1].id.startswith("fc_") and items[2].id == "fc_kept"
    assert items[3].item == {"id": items[3].id, "type": "function_call_output", "call_id": "call_1",
                             "output": "Sunny", "status": "completed"}
    joined = inputs.join_calls([i.message for i in items])
    assert [m["role"] for m in joined] == ["user", "assistant", "tool", "tool"]
    assert [c["id"] for c in joined[1]["tool_calls"]] == ["call_1", "call_2"] and joined[3]["content"] == "Rain"
    prompt = inputs.build_prompt(TRANSCRIPT, CharTokenizer(), LIMITS, instructions=None,
                                 history=[i.message for i in items], max_output_tokens=16, truncation="disabled")
    text = "".join(chr(t) for t in prompt.ids)
    assert '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Rome"}}\n</tool_call>' in text
    assert "<tool_response>\nSunny\n</tool_response>\n<tool_response>\nRain\n</tool_response>" in text


def test_a_call_output_without_its_call_is_a_400() -> None:
    items = inputs.parse_input([{"type": "function_call_output", "call_id": "call_x", "output": "1"}])
    with pytest.raises(APIError) as info:
        inputs.join_calls([i.message for i in items])
    assert info.value.param == "input" and "call_x" in info.value.message


def test_tools_go_into_the_prompt_and_a_forced_call_ends_it() -> None:
    weather = {"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {}}}
    spec = request.check(body(tools=[weather], tool_choice="required"))
    assert [t.name for t in spec.tools] == ["get_weather"] and spec.tool_choice.mode == "required"
    prompt = inputs.build_prompt(TRANSCRIPT, CharTokenizer(), dataclasses.replace(LIMITS, max_model_len=2000),
                                 instructions="Be brief.",
                                 history=[{"role": "user", "content": "Hi"}], max_output_tokens=16,
                                 truncation="disabled", spec=spec, suffix="<tool_call>\n")
    text = "".join(chr(t) for t in prompt.ids)
    assert text.startswith("System: Be brief.\n\nYou are a function calling AI model.")
    assert '"name": "get_weather"' in text and text.endswith("<tool_call>\n")


def test_formats_and_tools_are_echoed_in_responses_shape() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    weather = {"type": "function", "name": "get_weather", "parameters": schema}
    fields = request.echo_fields(body(text={"format": {"type": "json_schema", "name": "A", "schema": schema}},
                                      tools=[weather], tool_choice={"type": "function", "name": "get_weather"}))
    assert fields["text"]["format"] == {"type": "json_schema", "description": None, "name": "A", "schema": schema,
                                        "strict": False}
    assert fields["tools"] == [{"type": "function", "description": None, "name": "get_weather",
                                "parameters": schema, "strict": True}]
    assert fields["tool_choice"] == {"type": "function", "name": "get_weather"}
    assert request.check(body(text={"format": {"type": "json_object"}})).json_schema == {"type": "object"}
