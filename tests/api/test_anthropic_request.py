"""A Messages request -> its conversation, output shape and GenerationRequest, and the 400s, with a scripted
tokenizer: the same template, tool prompt and grammars chat uses."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from streamserve.api.anthropic.content import conversation
from streamserve.api.anthropic.protocol import CountTokensRequest, MessagesRequest
from streamserve.api.anthropic.request import count_tokens, messages_request, output_spec
from streamserve.api.errors import APIError, ContextLengthExceededError, NotSupportedError
from streamserve.prompting.errors import RequestError
from streamserve.prompting.grammars import CALL_OPEN
from streamserve.prompting.templates import TRANSCRIPT
from tests.api.test_params import LIMITS as CHAT_LIMITS
from tests.api.test_params import TOK

LIMITS = dataclasses.replace(CHAT_LIMITS, max_model_len=4000)  # one token per character: tool prompts are long

WEATHER = {"name": "get_weather", "description": "The weather in a city.",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


def body(**fields: Any) -> MessagesRequest:
    return MessagesRequest.model_validate(
        {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}], **fields})


def error_of(call: Any) -> APIError | RequestError:
    with pytest.raises((APIError, RequestError)) as info:
        call()
    return info.value


def build(request: MessagesRequest) -> Any:
    return messages_request(request, conversation(request.system, request.messages), TOK, TRANSCRIPT, LIMITS)


def test_a_plain_request_samples_as_asked_and_stops_on_its_own_and_the_templates_strings() -> None:
    spec, meta = build(body(temperature=0, top_k=5, stop_sequences=["END"]))
    (choice,) = spec.choices
    assert choice.params.max_tokens == 10 and choice.params.temperature == 0 and choice.params.top_k == 5
    assert choice.params.grammar is None and spec.tool_prefix is None
    assert spec.stop == ("END", *TRANSCRIPT.stop) and meta.stop_sequences == ("END",)
    assert spec.prompt_tokens == len(choice.prompt_ids) and meta.id.startswith("msg_")
    assert build(body())[0].choices[0].params.temperature == 1.0


def test_count_tokens_is_the_length_of_the_prompt_messages_reads() -> None:
    for fields in ({}, {"system": "Be brief."}, {"system": [{"type": "text", "text": "A"}, {"type": "text",
                                                                                         "text": "B"}]},
                   {"tools": [WEATHER]}, {"tools": [WEATHER], "tool_choice": {"type": "any"}},
                   {"tools": [WEATHER], "tool_choice": {"type": "tool", "name": "get_weather"}}):
        request = body(**fields)
        counted = count_tokens(CountTokensRequest.model_validate(request.model_dump()), TOK, TRANSCRIPT, LIMITS)
        assert counted == build(request)[0].prompt_tokens, fields


def test_system_blocks_and_text_blocks_reach_the_prompt() -> None:
    talk = conversation([{"type": "text", "text": "Rule one.", "cache_control": {"type": "ephemeral"}}],
                        body(messages=[{"role": "user", "content": [{"type": "text", "text": "a"},
                                                                    {"type": "text", "text": "b"}]}]).messages)
    assert talk.chat() == [{"role": "system", "content": "Rule one."}, {"role": "user", "content": "a\nb"}]


def test_thinking_blocks_in_history_are_accepted_and_left_out() -> None:
    request = body(messages=[
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "four", "signature": "sig"},
                                          {"type": "redacted_thinking", "data": "xyz"},
                                          {"type": "text", "text": "4"}]},
        {"role": "user", "content": "and 3+3?"},
    ], thinking={"type": "enabled", "budget_tokens": 2048})
    talk = conversation(request.system, request.messages)
    assert talk.messages == [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"},
                             {"role": "user", "content": "and 3+3?"}]
    assert build(request)[0].prompt_tokens > 0


def test_a_tool_round_trip_becomes_calls_and_results() -> None:
    request = body(tools=[WEATHER], messages=[
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": [{"type": "text", "text": "Checking."},
                                          {"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                                           "input": {"city": "Paris"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                                      "content": [{"type": "text", "text": "Sunny"}]},
                                     {"type": "text", "text": "Thanks!"}]},
    ])
    talk = conversation(request.system, request.messages)
    assert talk.messages[1]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    assert talk.messages[2] == {"role": "tool", "tool_call_id": "toolu_1", "content": "Sunny"}
    assert talk.messages[3] == {"role": "user", "content": "Thanks!"}
    text = "".join(chr(t) for t in build(request)[0].choices[0].prompt_ids)
    assert "<tool_response>\nSunny\n</tool_response>" in text and '"city": "Paris"' in text


def test_tool_choice_any_and_a_named_tool_are_enforced_from_the_first_token() -> None:
    spec, _ = build(body(tools=[WEATHER], tool_choice={"type": "any", "disable_parallel_tool_use": True}))
    assert spec.choices[0].params.grammar is not None and spec.tool_prefix == f"{CALL_OPEN}\n"
    spec, _ = build(body(tools=[WEATHER], tool_choice={"type": "tool", "name": "get_weather"}))
    assert spec.tool_prefix is not None and '"name": "get_weather"' in spec.tool_prefix
    spec, _ = build(body(tools=[WEATHER]))
    assert spec.opening == "deferred" and spec.choices[0].params.grammar is not None
    spec, _ = build(body(tools=[WEATHER], tool_choice={"type": "none"}))
    assert spec.tool_prefix is None and spec.choices[0].params.grammar is None
    assert not output_spec(body(tools=[WEATHER], tool_choice={"type": "any",
                                                              "disable_parallel_tool_use": True})).parallel_tool_calls


def test_output_config_format_and_the_beta_output_format_give_a_grammar() -> None:
    schema = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
    for fields in ({"output_config": {"format": {"type": "json_schema", "schema": schema}, "effort": "low"}},
                   {"output_format": {"type": "json_schema", "schema": schema}}):
        assert output_spec(body(**fields)).json_schema == schema
        assert build(body(**fields))[0].choices[0].params.grammar is not None


def test_a_trailing_assistant_turn_is_a_prefill_that_ends_the_prompt() -> None:
    request = body(messages=[{"role": "user", "content": "Greek for Sun?"},
                             {"role": "assistant", "content": "The answer is"}])
    talk = conversation(request.system, request.messages)
    assert talk.prefill == "The answer is" and talk.messages[-1]["role"] == "user"
    prompt = "".join(chr(t) for t in build(request)[0].choices[0].prompt_ids)
    assert prompt.endswith("Greek for Sun?\n\nAssistant:The answer is")


@pytest.mark.parametrize(("fields", "param", "words"), [
    ({"messages": [{"role": "user", "content": [{"type": "image", "source": {}}]}]}, "messages.0.content.0.type",
     "'image'"),
    ({"messages": [{"role": "user", "content": [{"type": "document", "source": {}}]}]},
     "messages.0.content.0.type", "'document'"),
    ({"messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_x"}]}]},
     "messages.0.content.0.tool_use_id", "toolu_x"),
    ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "tools.0.type", "web_search"),
    ({"tools": [{"name": "f"}]}, "tools.0.input_schema", "input_schema"),
    ({"tools": [WEATHER, WEATHER]}, "tools", "unique"),
    ({"tool_choice": {"type": "any"}}, "tool_choice", "needs tools"),
    ({"tools": [WEATHER], "tool_choice": {"type": "tool", "name": "nope"}}, "tool_choice.name", "nope"),
    ({"tools": [WEATHER], "tool_choice": {"type": "required"}}, "tool_choice.type", "required"),
    ({"output_config": {"format": {"type": "json_object"}}}, "output_config.format.type", "json_schema"),
    ({"stop_sequences": ["a", "b", "c", "d", "e"]}, "stop_sequences", "at most 4"),
    ({"tools": [WEATHER], "messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]},
     "messages.1", "prefill"),
    ({"messages": [{"role": "assistant", "content": "only me"}]}, "messages", "user turn"),
])
def test_what_cannot_be_served_is_a_400_naming_the_field(fields: dict[str, Any], param: str, words: str) -> None:
    error = error_of(lambda: build(body(**fields)))
    assert error.param == param and words in error.message
    assert not isinstance(error, APIError) or error.status_code == 400


def test_unreadable_blocks_are_unsupported_and_a_prompt_over_the_context_is_refused() -> None:
    error = error_of(lambda: build(body(messages=[{"role": "user", "content": [{"type": "image"}]}])))
    assert isinstance(error, NotSupportedError)
    assert isinstance(error_of(lambda: build(body(max_tokens=LIMITS.max_model_len))), ContextLengthExceededError)


def test_the_required_fields_are_required() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="max_tokens"):
        MessagesRequest.model_validate({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    with pytest.raises(ValidationError, match="role"):
        MessagesRequest.model_validate({"model": "m", "max_tokens": 1, "messages": [{"role": "system",
                                                                                     "content": "x"}]})
