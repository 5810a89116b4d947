"""Protocol models: request validation and defaults, response shapes as the official client sees them."""

from __future__ import annotations

from typing import Any

import openai.types
import openai.types.chat
import pytest
from pydantic import ValidationError

from streamserve.api.protocol import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    CompletionChunk,
    CompletionRequest,
    ErrorResponse,
    GenericContentPart,
    ModelList,
    TextContentPart,
)


def chat(**fields: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": "hi"}], **fields}


def completion(**fields: Any) -> dict[str, Any]:
    return {"model": "m", "prompt": "Once", **fields}


def test_unknown_fields_are_ignored() -> None:
    request = ChatCompletionRequest.model_validate(chat(vendor_extra={"a": 1}, store=True))
    assert "vendor_extra" not in request.model_dump()
    assert not hasattr(request, "store")


def test_absent_parameters_stay_none_so_the_server_applies_defaults() -> None:
    request = ChatCompletionRequest.model_validate(chat())
    unset = {name: value for name, value in request.model_dump().items() if name not in {"model", "messages"}}
    assert unset.pop("n") == 1
    assert set(unset.values()) == {None}
    assert CompletionRequest.model_validate(completion()).max_tokens is None


def test_field_order_follows_the_reference() -> None:
    assert list(ChatCompletionRequest.model_fields)[:4] == [
        "messages",
        "model",
        "frequency_penalty",
        "logit_bias",
    ]
    assert list(CompletionRequest.model_fields)[:4] == ["model", "prompt", "best_of", "echo"]


def test_content_parts_text_and_other_types() -> None:
    content = [{"type": "text", "text": "Hi"}, {"type": "image_url", "image_url": {"url": "http://x"}}]
    request = ChatCompletionRequest.model_validate(chat(messages=[{"role": "user", "content": content}]))
    message = request.messages[0]
    assert isinstance(message.content, list)
    text, image = message.content
    assert isinstance(text, TextContentPart) and text.text == "Hi"
    assert isinstance(image, GenericContentPart) and image.type == "image_url"


def test_text_part_without_text_is_an_error_not_a_generic_part() -> None:
    with pytest.raises(ValidationError) as info:
        ChatCompletionRequest.model_validate(chat(messages=[{"role": "user", "content": [{"type": "text"}]}]))
    assert any(e["type"] == "missing" and e["loc"][-1] == "text" for e in info.value.errors())


def test_message_fields() -> None:
    messages = [
        {"role": "developer", "content": "be brief"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function"}]},
        {"role": "tool", "content": "42", "tool_call_id": "c1", "name": "calc"},
    ]
    parsed = ChatCompletionRequest.model_validate(chat(messages=messages)).messages
    assert [m.role for m in parsed] == ["developer", "assistant", "tool"]
    assert parsed[1].content is None and parsed[1].tool_calls == [{"id": "c1", "type": "function"}]
    assert parsed[2].tool_call_id == "c1"


@pytest.mark.parametrize(
    "fields",
    [
        {"messages": []},
        {"messages": [{"role": "bot", "content": "x"}]},
        {"temperature": 2.01},
        {"temperature": -0.1},
        {"top_p": 1.5},
        {"frequency_penalty": -2.5},
        {"presence_penalty": 2.5},
        {"logit_bias": {"50256": 101}},
        {"top_logprobs": 21},
        {"max_tokens": 0},
        {"max_completion_tokens": 0},
        {"n": 0},
        {"stop": ["a", "b", "c", "d", "e"]},
        {"top_k": -1},
        {"min_p": 1.1},
        {"repetition_penalty": 0},
        {"stream_options": {"include_usage": "maybe"}},
    ],
)
def test_chat_out_of_range_values_are_rejected(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ChatCompletionRequest.model_validate(chat(**fields))


def test_chat_edge_values_are_accepted() -> None:
    request = ChatCompletionRequest.model_validate(
        chat(
            temperature=2,
            top_p=0,
            logit_bias={"1": -100},
            top_logprobs=20,
            stop=["a", "b", "c", "d"],
            stream=True,
            stream_options={"include_usage": True, "include_obfuscation": False},
            tool_choice={"type": "function", "function": {"name": "f"}},
            top_k=0,
            min_p=0.05,
            repetition_penalty=1.1,
        )
    )
    assert request.stream_options is not None and request.stream_options.include_usage is True
    assert request.stop == ["a", "b", "c", "d"]


@pytest.mark.parametrize("prompt", ["text", ["a", "b"], [1, 2, 3], [[1, 2], [3]]])
def test_completion_prompt_forms(prompt: Any) -> None:
    assert CompletionRequest.model_validate(completion(prompt=prompt)).prompt == prompt


@pytest.mark.parametrize(
    "fields", [{"logprobs": 6}, {"max_tokens": -1}, {"best_of": 0}, {"prompt": {"a": 1}}]
)
def test_completion_out_of_range_values_are_rejected(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        CompletionRequest.model_validate(completion(**fields))


def test_completion_allows_zero_max_tokens_and_echo() -> None:
    request = CompletionRequest.model_validate(completion(max_tokens=0, echo=True, logprobs=5, suffix="!"))
    assert (request.max_tokens, request.echo, request.logprobs) == (0, True, 5)


CHUNK_ENVELOPE = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m"}


@pytest.mark.parametrize(
    "delta",
    [{"role": "assistant", "content": "", "refusal": None}, {"content": "Two"}, {}],
    ids=["role", "content", "finish"],
)
def test_chunk_keeps_exactly_the_delta_keys_sent(delta: dict[str, Any]) -> None:
    chunk = {
        **CHUNK_ENVELOPE,
        "system_fingerprint": None,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}],
    }
    parsed = ChatCompletionChunk.model_validate(chunk)
    assert parsed.model_dump(exclude_unset=True) == chunk
    assert "usage" not in parsed.model_dump(exclude_unset=True)


def test_usage_chunk_and_null_usage() -> None:
    usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    final = ChatCompletionChunk.model_validate({**CHUNK_ENVELOPE, "choices": [], "usage": usage})
    assert final.usage is not None and final.usage.total_tokens == 5
    nulled = ChatCompletionChunk.model_validate({**CHUNK_ENVELOPE, "choices": [], "usage": None})
    assert nulled.model_dump(exclude_unset=True)["usage"] is None


def test_legacy_chunk_object_is_text_completion() -> None:
    chunk = {
        "id": "cmpl-1",
        "object": "text_completion",
        "created": 1,
        "model": "m",
        "choices": [{"text": "a", "index": 0, "logprobs": None, "finish_reason": None}],
    }
    assert CompletionChunk.model_validate(chunk).object == "text_completion"
    with pytest.raises(ValidationError):
        CompletionChunk.model_validate({**chunk, "object": "chat.completion.chunk"})


def test_official_client_objects_validate_as_protocol_models() -> None:
    sdk = openai.types.chat.ChatCompletion(
        id="chatcmpl-1",
        object="chat.completion",
        created=1,
        model="m",
        choices=[
            openai.types.chat.chat_completion.Choice(
                index=0,
                finish_reason="stop",
                message=openai.types.chat.ChatCompletionMessage(role="assistant", content="Two"),
            )
        ],
        usage=openai.types.CompletionUsage(prompt_tokens=1, completion_tokens=1, total_tokens=2),
    )
    ours = ChatCompletion.model_validate(sdk.model_dump())
    assert ours.choices[0].message.content == "Two"
    assert openai.types.chat.ChatCompletion.model_validate(ours.model_dump()) == sdk


def test_model_list_and_error_envelope_shapes() -> None:
    models = ModelList.model_validate(
        {"data": [{"id": "smollm2", "created": 1, "owned_by": "streamserve", "state": "loaded", "max_model_len": 2048},
                  {"id": "gemma", "created": 1, "owned_by": "streamserve", "state": "unloaded"}]}
    )
    assert models.model_dump() == {
        "object": "list",
        "data": [
            {
                "id": "smollm2",
                "object": "model",
                "created": 1,
                "owned_by": "streamserve",
                "state": "loaded",
                "max_model_len": 2048,
                "deterministic": False,
                "memory_bytes": None,
            },
            {
                "id": "gemma",
                "object": "model",
                "created": 1,
                "owned_by": "streamserve",
                "state": "unloaded",
                "max_model_len": None,
                "deterministic": False,
                "memory_bytes": None,
            },
        ],
    }
    error = ErrorResponse.model_validate(
        {"error": {"message": "no", "type": "invalid_request_error", "param": None, "code": None}}
    )
    assert list(error.model_dump()["error"]) == ["message", "type", "param", "code"]
    with pytest.raises(ValidationError):
        ErrorResponse.model_validate({"error": {"message": "no", "type": "x"}})
