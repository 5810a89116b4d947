"""ChunkFormatter and CompletionBuilder: exact chunk JSON of both shapes, checked with the official client."""

from __future__ import annotations

from typing import Any

import openai.types
import openai.types.chat
import orjson
import pytest
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.completion_choice import Logprobs as SDKCompletionLogprobs

from streamserve.api import protocol
from streamserve.formats.completions import ChunkFormatter, CompletionBuilder, CompletionMeta, Shape, new_completion_id
from streamserve.generation.events import (
    Event,
    Finish,
    LogprobEntry,
    TextDelta,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    TopLogprob,
    Usage,
)
from streamserve.prompting.structured import Opening


def meta(shape: Shape = Shape.CHAT, *, n: int = 1, include_usage: bool = False,
         opening: Opening = "text") -> CompletionMeta:
    prefix = "chatcmpl-abc" if shape is Shape.CHAT else "cmpl-abc"
    return CompletionMeta(
        shape=shape,
        id=prefix,
        created=1721075653,
        model="gpt-4o-mini",
        n=n,
        include_usage=include_usage,
        system_fingerprint="fp_1",
        opening=opening,
    )


def stream(m: CompletionMeta, events: list[Event]) -> list[dict[str, Any]]:
    formatter = ChunkFormatter(m)
    chunks = formatter.opening()
    for event in events:
        chunks.extend(formatter.render(event))
    return chunks


def built(m: CompletionMeta, events: list[Event]) -> dict[str, Any]:
    builder = CompletionBuilder(m)
    for event in events:
        builder.add(event)
    return builder.build()


def entry(token: str, logprob: float, offset: int, *top: tuple[str, float]) -> LogprobEntry:
    return LogprobEntry(
        token=token,
        logprob=logprob,
        bytes=tuple(token.encode()),
        top=tuple(TopLogprob(token=t, logprob=lp, bytes=tuple(t.encode())) for t, lp in top),
        offset=offset,
    )


CHAT_ENVELOPE = (
    '"id":"chatcmpl-abc","object":"chat.completion.chunk","created":1721075653,'
    '"model":"gpt-4o-mini","system_fingerprint":"fp_1"'
)
COMPLETION_ENVELOPE = (
    '"id":"cmpl-abc","object":"text_completion","created":1721075653,'
    '"model":"gpt-4o-mini","system_fingerprint":"fp_1"'
)
TWO: list[Event] = [TextDelta(0, "Two"), TextDelta(0, "."), Finish(0, "stop"), Usage(18, 2)]


def chat_json(choices: str, tail: str = "") -> str:
    """The exact JSON of a chat chunk with these choices (and ``tail`` keys after them)."""
    return "{" + CHAT_ENVELOPE + ',"choices":[' + choices + "]" + tail + "}"


def completion_json(choices: str, tail: str = "") -> str:
    """The exact JSON of a legacy completion chunk."""
    return "{" + COMPLETION_ENVELOPE + ',"choices":[' + choices + "]" + tail + "}"


def test_new_response_id_prefix_per_shape_and_unique() -> None:
    chat_ids = {new_completion_id(Shape.CHAT) for _ in range(50)}
    assert len(chat_ids) == 50
    assert all(i.startswith("chatcmpl-") and len(i) > len("chatcmpl-") + 16 for i in chat_ids)
    assert new_completion_id(Shape.COMPLETION).startswith("cmpl-")


def test_chat_stream_exact_json_without_usage() -> None:
    lines = [orjson.dumps(c).decode() for c in stream(meta(), TWO)]
    assert lines == [
        chat_json(
            '{"index":0,"delta":{"role":"assistant","content":"","refusal":null},'
            '"logprobs":null,"finish_reason":null}'
        ),
        chat_json('{"index":0,"delta":{"content":"Two"},"logprobs":null,"finish_reason":null}'),
        chat_json('{"index":0,"delta":{"content":"."},"logprobs":null,"finish_reason":null}'),
        chat_json('{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}'),
    ]


def test_chat_stream_with_usage_nulls_then_usage_chunk() -> None:
    chunks = stream(meta(include_usage=True), TWO)
    assert [c["usage"] for c in chunks[:-1]] == [None, None, None, None]
    assert orjson.dumps(chunks[-1]).decode() == chat_json(
        "",
        ',"usage":{"prompt_tokens":18,"completion_tokens":2,"total_tokens":20,'
        '"prompt_tokens_details":{"cached_tokens":0}}',
    )


def test_completion_stream_exact_json() -> None:
    m = meta(Shape.COMPLETION, include_usage=True)
    events: list[Event] = [TextDelta(0, " Paris"), Finish(0, "length"), Usage(5, 1, cached_tokens=3)]
    assert ChunkFormatter(m).opening() == []
    assert [orjson.dumps(c).decode() for c in stream(m, events)] == [
        completion_json('{"text":" Paris","index":0,"logprobs":null,"finish_reason":null}', ',"usage":null'),
        completion_json('{"text":"","index":0,"logprobs":null,"finish_reason":"length"}', ',"usage":null'),
        completion_json(
            "",
            ',"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6,'
            '"prompt_tokens_details":{"cached_tokens":3}}',
        ),
    ]


@pytest.mark.parametrize("shape", list(Shape))
def test_usage_renders_nothing_without_include_usage(shape: Shape) -> None:
    chunks = stream(meta(shape), [TextDelta(0, "a"), Finish(0, "stop"), Usage(1, 1)])
    assert all("usage" not in c for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize("shape", list(Shape))
def test_empty_text_skipped_unless_it_carries_logprobs(shape: Shape) -> None:
    formatter = ChunkFormatter(meta(shape))
    assert formatter.render(TextDelta(0, "")) == []
    assert formatter.render(TextDelta(0, "", logprobs=())) == []
    [chunk] = formatter.render(TextDelta(0, "", logprobs=(entry("\n", -0.5, 0),)))
    assert chunk["choices"][0]["logprobs"] is not None


def test_n2_each_index_gets_its_own_role_and_finish_chunk() -> None:
    events: list[Event] = [
        TextDelta(1, "B"),
        TextDelta(0, "A"),
        Finish(1, "length"),
        TextDelta(0, "a"),
        Finish(0, "stop"),
        Usage(3, 4),
    ]
    chunks = stream(meta(n=2, include_usage=True), events)
    per_index: dict[int, list[dict[str, Any]]] = {0: [], 1: []}
    for chunk in chunks[:-1]:
        [choice] = chunk["choices"]
        per_index[choice["index"]].append(choice)
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 7
    for choices in per_index.values():
        assert choices[0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
        assert all("role" not in c["delta"] for c in choices[1:])
        assert [c["finish_reason"] is not None for c in choices] == [False] * (len(choices) - 1) + [True]
        assert choices[-1]["delta"] == {}
    assert "".join(c["delta"].get("content", "") for c in per_index[0]) == "Aa"
    assert per_index[1][-1]["finish_reason"] == "length"


@pytest.mark.parametrize("shape", list(Shape))
def test_all_chunks_share_envelope(shape: Shape) -> None:
    chunks = stream(meta(shape, n=2, include_usage=True), [TextDelta(0, "x"), Finish(0, "stop"), Usage(1, 1)])
    keys = {(c["id"], c["object"], c["created"], c["model"], c["system_fingerprint"]) for c in chunks}
    assert len(keys) == 1


def test_chat_logprobs_shape() -> None:
    lp = (entry("Hel", -0.1, 0, ("Hel", -0.1), ("Hi", -2.5)), entry("lo", -0.2, 3, ("lo", -0.2)))
    chunks = stream(meta(), [TextDelta(0, "Hello", logprobs=lp), Finish(0, "stop")])
    role, content, finish = chunks
    assert role["choices"][0]["logprobs"] is None
    assert finish["choices"][0]["logprobs"] is None
    assert content["choices"][0]["logprobs"] == {
        "content": [
            {
                "token": "Hel",
                "logprob": -0.1,
                "bytes": [72, 101, 108],
                "top_logprobs": [
                    {"token": "Hel", "logprob": -0.1, "bytes": [72, 101, 108]},
                    {"token": "Hi", "logprob": -2.5, "bytes": [72, 105]},
                ],
            },
            {
                "token": "lo",
                "logprob": -0.2,
                "bytes": [108, 111],
                "top_logprobs": [{"token": "lo", "logprob": -0.2, "bytes": [108, 111]}],
            },
        ],
        "refusal": None,
    }
    sdk = openai.types.chat.ChatCompletionChunk.model_validate(content)
    assert sdk.choices[0].logprobs is not None and sdk.choices[0].logprobs.content is not None
    assert bytes(b for e in sdk.choices[0].logprobs.content for b in e.bytes or []).decode() == "Hello"


def test_completion_logprobs_shape() -> None:
    lp = (entry(" Par", -0.3, 5, (" Par", -0.3), (" Lon", -1.5)), entry("is", -0.01, 9, ("is", -0.01)))
    [chunk] = ChunkFormatter(meta(Shape.COMPLETION)).render(TextDelta(0, " Paris", logprobs=lp))
    assert chunk["choices"][0]["logprobs"] == {
        "tokens": [" Par", "is"],
        "token_logprobs": [-0.3, -0.01],
        "top_logprobs": [{" Par": -0.3, " Lon": -1.5}, {"is": -0.01}],
        "text_offset": [5, 9],
    }
    SDKCompletionLogprobs.model_validate(chunk["choices"][0]["logprobs"])


@pytest.mark.parametrize("include_usage", [False, True])
def test_chat_chunks_validate_against_official_and_protocol_types(include_usage: bool) -> None:
    lp = (entry("Two", -0.01, 0, ("Two", -0.01)),)
    events: list[Event] = [TextDelta(0, "Two", logprobs=lp), TextDelta(1, "2"), Finish(0, "stop")]
    events += [Finish(1, "stop"), Usage(18, 2)]
    chunks = stream(meta(n=2, include_usage=include_usage), events)
    for chunk in chunks:
        openai.types.chat.ChatCompletionChunk.model_validate(chunk)
        # The protocol model keeps exactly the keys sent: the delta's absent keys and the absent usage.
        assert protocol.ChatCompletionChunk.model_validate(chunk).model_dump(exclude_unset=True) == chunk

    # The SDK's own stream accumulator (it raises on a "length" finish, hence "stop" on both).
    state: ChatCompletionStreamState[None] = ChatCompletionStreamState()
    for chunk in chunks:
        state.handle_chunk(openai.types.chat.ChatCompletionChunk.model_validate(chunk))
    final = state.get_final_completion()
    assert [(c.index, c.message.content, c.finish_reason) for c in final.choices] == [
        (0, "Two", "stop"),
        (1, "2", "stop"),
    ]


@pytest.mark.parametrize("include_usage", [False, True])
def test_completion_chunks_validate_against_official_and_protocol_types(include_usage: bool) -> None:
    lp = (entry(" Paris", -0.3, 0, (" Paris", -0.3)),)
    events: list[Event] = [TextDelta(0, " Paris", logprobs=lp), Finish(0, "stop"), Usage(5, 1)]
    chunks = stream(meta(Shape.COMPLETION, include_usage=include_usage), events)
    for chunk in chunks:
        assert protocol.CompletionChunk.model_validate(chunk).model_dump(exclude_unset=True) == chunk
        if all(c["finish_reason"] is not None for c in chunk["choices"]):
            openai.types.Completion.model_validate(chunk)
        else:
            # The SDK types finish_reason as non-null, yet OpenAI streams null until the end and the
            # SDK builds stream objects without validation: check everything else.
            choice = chunk["choices"][0]
            finished = {**chunk, "choices": [{**choice, "finish_reason": "stop"}]}
            openai.types.Completion.model_validate(finished)


def test_chat_builder_joins_text_and_logprobs_per_choice() -> None:
    events: list[Event] = [
        TextDelta(1, "Zw", logprobs=(entry("Zw", -1.0, 0),)),
        TextDelta(0, "Tw", logprobs=(entry("Tw", -0.5, 0),)),
        TextDelta(0, "o", logprobs=(entry("o", -0.25, 2),)),
        TextDelta(1, "ei", logprobs=()),
        Finish(1, "length"),
        Finish(0, "stop"),
        Usage(18, 4, cached_tokens=16),
    ]
    response = built(meta(n=2), events)
    assert orjson.dumps({k: v for k, v in response.items() if k != "choices"}).decode() == (
        '{"id":"chatcmpl-abc","object":"chat.completion","created":1721075653,"model":"gpt-4o-mini",'
        '"system_fingerprint":"fp_1","usage":{"prompt_tokens":18,"completion_tokens":4,"total_tokens":22,'
        '"prompt_tokens_details":{"cached_tokens":16}}}'
    )
    first, second = response["choices"]
    assert first["index"] == 0 and second["index"] == 1
    assert first["message"] == {"role": "assistant", "content": "Two", "refusal": None}
    assert second["message"]["content"] == "Zwei"
    assert [e["token"] for e in first["logprobs"]["content"]] == ["Tw", "o"]
    assert [e["token"] for e in second["logprobs"]["content"]] == ["Zw"]
    assert (first["finish_reason"], second["finish_reason"]) == ("stop", "length")
    sdk = openai.types.chat.ChatCompletion.model_validate(response)
    assert sdk.usage is not None and sdk.usage.prompt_tokens_details is not None
    assert sdk.usage.prompt_tokens_details.cached_tokens == 16
    assert protocol.ChatCompletion.model_validate(response).model_dump(exclude_unset=True) == response


def test_builder_equals_joined_stream_and_logprobs_null_when_not_requested() -> None:
    events: list[Event] = [TextDelta(0, "Tw"), TextDelta(0, ""), TextDelta(0, "o.")]
    events += [Finish(0, "stop"), Usage(9, 3)]
    response = built(meta(), events)
    streamed = "".join(c["choices"][0]["delta"].get("content", "") for c in stream(meta(), events))
    assert response["choices"][0]["message"]["content"] == streamed == "Two."
    assert response["choices"][0]["logprobs"] is None


def test_completion_builder() -> None:
    events: list[Event] = [
        TextDelta(0, " Par", logprobs=(entry(" Par", -0.3, 0, (" Par", -0.3)),)),
        TextDelta(0, "is", logprobs=(entry("is", -0.1, 4, ("is", -0.1)),)),
        Finish(0, "length"),
        Usage(5, 2),
    ]
    response = built(meta(Shape.COMPLETION), events)
    assert response["object"] == "text_completion"
    assert response["choices"] == [
        {
            "text": " Paris",
            "index": 0,
            "logprobs": {
                "tokens": [" Par", "is"],
                "token_logprobs": [-0.3, -0.1],
                "top_logprobs": [{" Par": -0.3}, {"is": -0.1}],
                "text_offset": [0, 4],
            },
            "finish_reason": "length",
        }
    ]
    assert openai.types.Completion.model_validate(response).choices[0].text == " Paris"
    assert protocol.Completion.model_validate(response).model_dump(exclude_unset=True) == response


def test_builder_keeps_a_choice_that_produced_no_text() -> None:
    response = built(meta(n=2), [TextDelta(0, "x"), Finish(0, "stop"), Finish(1, "length"), Usage(1, 1)])
    assert [c["message"]["content"] for c in response["choices"]] == ["x", ""]


def test_builder_refuses_to_build_unfinished_response() -> None:
    builder = CompletionBuilder(meta(n=2))
    builder.add(Finish(0, "stop"))
    builder.add(Usage(1, 0))
    with pytest.raises(AssertionError):
        builder.build()
    builder = CompletionBuilder(meta())
    builder.add(Finish(0, "stop"))
    with pytest.raises(AssertionError):
        builder.build()


# Tool calls

ID0, ID1 = "call_" + "a" * 24, "call_" + "b" * 24
CALL_EVENTS: list[Event] = [
    ToolCallStart(0, 0, ID0, "get_weather"),
    ToolCallDelta(0, 0, '{"ci'),
    ToolCallDelta(0, 0, 'ty": "Paris"}'),
    ToolCallEnd(0, 0, ID0, "get_weather", '{"city": "Paris"}'),
    ToolCallStart(0, 1, ID1, "get_time"),
    ToolCallDelta(0, 1, "{}"),
    ToolCallEnd(0, 1, ID1, "get_time", "{}"),
    Finish(0, "tool_calls"),
]


def deltas(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c["choices"][0]["delta"] for c in chunks if c["choices"]]


def test_tool_turn_streams_in_openais_exact_shape() -> None:
    chunks = stream(meta(opening="tool_call"), CALL_EVENTS)
    assert deltas(chunks) == [
        {"role": "assistant", "content": None},
        {"tool_calls": [{"index": 0, "id": ID0, "type": "function",
                         "function": {"name": "get_weather", "arguments": ""}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": '{"ci'}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": 'ty": "Paris"}'}}]},
        {"tool_calls": [{"index": 1, "id": ID1, "type": "function",
                         "function": {"name": "get_time", "arguments": ""}}]},
        {"tool_calls": [{"index": 1, "function": {"arguments": "{}"}}]},
        {},
    ]
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    for chunk in chunks:
        openai.types.chat.ChatCompletionChunk.model_validate(chunk)
        assert protocol.ChatCompletionChunk.model_validate(chunk).model_dump(exclude_unset=True) == chunk
    state: ChatCompletionStreamState[None] = ChatCompletionStreamState()
    for chunk in chunks:
        state.handle_chunk(openai.types.chat.ChatCompletionChunk.model_validate(chunk))
    message = state.get_final_completion().choices[0].message
    assert message.content is None
    assert [(c.id, c.function.name, c.function.arguments) for c in message.tool_calls or ()] == [
        (ID0, "get_weather", '{"city": "Paris"}'), (ID1, "get_time", "{}")]


def test_a_deferred_opening_is_decided_by_each_choices_first_event() -> None:
    events: list[Event] = [TextDelta(1, "Hi"), ToolCallStart(0, 0, ID0, "f"), ToolCallDelta(0, 0, "{}"),
                           Finish(0, "tool_calls"), Finish(1, "stop")]
    formatter = ChunkFormatter(meta(n=2, opening="deferred"))
    assert formatter.opening() == []
    chunks = [c for e in events for c in formatter.render(e)]
    by_index = [(c["choices"][0]["index"], c["choices"][0]["delta"]) for c in chunks]
    assert by_index[0] == (1, {"role": "assistant", "content": "", "refusal": None})
    assert by_index[1] == (1, {"content": "Hi"})
    assert by_index[2] == (0, {"role": "assistant", "content": None})
    assert by_index[3][1]["tool_calls"][0]["id"] == ID0
    # A choice that ends without any delta still opens, as a text turn.
    formatter = ChunkFormatter(meta(opening="deferred"))
    assert [c["choices"][0]["delta"] for c in formatter.render(Finish(0, "stop"))] == [
        {"role": "assistant", "content": "", "refusal": None}, {}]


def test_builder_puts_calls_in_the_message_with_null_content() -> None:
    response = built(meta(opening="tool_call"), [*CALL_EVENTS, Usage(10, 20)])
    message = response["choices"][0]["message"]
    assert message == {"role": "assistant", "content": None, "refusal": None, "tool_calls": [
        {"id": ID0, "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
        {"id": ID1, "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
    ]}
    assert response["choices"][0]["finish_reason"] == "tool_calls"
    openai.types.chat.ChatCompletion.model_validate(response)
    assert protocol.ChatCompletion.model_validate(response).model_dump(exclude_unset=True) == response
    with_text = built(meta(), [TextDelta(0, "Checking."), *CALL_EVENTS, Usage(1, 2)])
    assert with_text["choices"][0]["message"]["content"] == "Checking."
