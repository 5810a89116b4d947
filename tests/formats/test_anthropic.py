"""Neutral events -> Anthropic's Messages events and message object, checked event by event."""

from __future__ import annotations

import json
from typing import Any

from streamserve.engine import EngineError, EngineStoppedError
from streamserve.formats.anthropic import (
    MessageBuilder,
    MessageFormatter,
    MessageMeta,
    new_message_id,
    tool_use_id,
)
from streamserve.generation.events import (
    Annotation,
    Event,
    Finish,
    TextDelta,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    Usage,
)
from streamserve.moderation import ModerationError, ModerationResult

META = MessageMeta("msg_x", "claude-local", ("STOP",))
PROMPT = Usage(40, 0, 30)


def _render(events: list[Event], meta: MessageMeta = META) -> list[dict[str, Any]]:
    formatter = MessageFormatter(meta, lambda: PROMPT)
    out = formatter.opening()
    for event in events:
        out.extend(formatter.render(event))
    return out


def _text_events(finish: Finish) -> list[Event]:
    return [TextDelta(0, "Hel"), TextDelta(0, ""), TextDelta(0, "lo"), finish, Usage(40, 2, 30)]


def test_a_text_stream_is_start_block_deltas_stop_delta_stop() -> None:
    events = _render(_text_events(Finish(0, "stop")))
    assert [e["type"] for e in events] == ["message_start", "content_block_start", "content_block_delta",
                                           "content_block_delta", "content_block_stop", "message_delta",
                                           "message_stop"]
    start = events[0]["message"]
    assert start["id"] == "msg_x" and start["model"] == "claude-local" and start["content"] == []
    assert start["stop_reason"] is None and start["stop_sequence"] is None
    assert start["usage"] == {"input_tokens": 10, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 30,
                              "output_tokens": 0, "service_tier": "standard"}
    assert events[1] == {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
    assert [e["delta"] for e in events[2:4]] == [{"type": "text_delta", "text": "Hel"},
                                                 {"type": "text_delta", "text": "lo"}]
    assert events[4] == {"type": "content_block_stop", "index": 0}
    assert events[5]["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert events[5]["usage"]["output_tokens"] == 2 and events[5]["usage"]["input_tokens"] == 10
    assert events[6] == {"type": "message_stop"}


def test_stop_reasons() -> None:
    def delta(finish: Finish) -> dict[str, Any]:
        return next(e for e in _render(_text_events(finish)) if e["type"] == "message_delta")["delta"]

    assert delta(Finish(0, "length")) == {"stop_reason": "max_tokens", "stop_sequence": None}
    assert delta(Finish(0, "stop", "STOP")) == {"stop_reason": "stop_sequence", "stop_sequence": "STOP"}
    # a template's own stop string (the transcript's "\nUser:") is the end of the turn, not the client's sequence
    assert delta(Finish(0, "stop", "\nUser:")) == {"stop_reason": "end_turn", "stop_sequence": None}
    assert delta(Finish(0, "content_filter")) == {"stop_reason": "refusal", "stop_sequence": None}


def test_a_tool_call_opens_with_empty_input_and_streams_its_arguments_as_input_json_delta() -> None:
    pieces = ['{"city"', ': "Par', 'is"}']
    events = _render([TextDelta(0, "Let me check."), ToolCallStart(0, 0, "call_abc", "get_weather"),
                      *[ToolCallDelta(0, 0, p) for p in pieces], ToolCallEnd(0, 0, "call_abc", "get_weather",
                                                                             "".join(pieces)),
                      Finish(0, "tool_calls"), Usage(40, 9, 30)])
    kinds = [e["type"] for e in events]
    assert kinds == ["message_start", "content_block_start", "content_block_delta", "content_block_stop",
                     "content_block_start", *["content_block_delta"] * 3, "content_block_stop", "message_delta",
                     "message_stop"]
    assert events[4] == {"type": "content_block_start", "index": 1,
                         "content_block": {"type": "tool_use", "id": "toolu_abc", "name": "get_weather", "input": {}}}
    fragments = [e["delta"]["partial_json"] for e in events[5:8]]
    assert all(e["index"] == 1 and e["delta"]["type"] == "input_json_delta" for e in events[5:8])
    assert json.loads("".join(fragments)) == {"city": "Paris"}
    assert events[8] == {"type": "content_block_stop", "index": 1}
    assert events[9]["delta"]["stop_reason"] == "tool_use"


def test_nothing_follows_message_stop_and_annotations_render_nothing() -> None:
    formatter = MessageFormatter(META, lambda: PROMPT)
    formatter.opening()
    for event in _text_events(Finish(0, "stop")):
        formatter.render(event)
    assert formatter.render(TextDelta(0, "late")) == []
    assert formatter.render(Usage(1, 1)) == []
    assert MessageFormatter(META, lambda: PROMPT).render(Annotation(0, ModerationResult(), 0, 1, 1)) == []


def test_a_failure_is_one_error_event_in_anthropics_shape_and_ends_the_stream() -> None:
    formatter = MessageFormatter(META, lambda: PROMPT)
    formatter.opening()
    formatter.render(TextDelta(0, "Hi"))
    assert formatter.failure(EngineError("decode failed: secret")) == [
        {"type": "error", "error": {"type": "api_error",
                                    "message": "The server had an error while generating this message."}}]
    assert formatter.render(Usage(1, 1)) == []
    stopped = MessageFormatter(META, lambda: PROMPT).failure(EngineStoppedError("the server is shutting down"))
    assert stopped[0]["error"]["type"] == "overloaded_error"
    moderated = MessageFormatter(META, lambda: PROMPT).failure(ModerationError("guard failed"))
    assert moderated[0]["error"] == {"type": "api_error", "message": "moderation failed: guard failed"}


def test_the_whole_message_holds_the_joined_text_and_parsed_tool_input() -> None:
    builder = MessageBuilder(META)
    for event in [TextDelta(0, "Let "), TextDelta(0, "me."), ToolCallStart(0, 0, "call_1", "f"),
                  ToolCallDelta(0, 0, '{"a": '), ToolCallDelta(0, 0, "[1, 2]}"),
                  ToolCallEnd(0, 0, "call_1", "f", '{"a": [1, 2]}'), ToolCallStart(0, 1, "call_2", "f"),
                  ToolCallDelta(0, 1, '{"a": [3'), Finish(0, "length"), Usage(40, 20, 0)]:
        builder.add(event)
    message = builder.build()
    assert list(message) == ["id", "type", "role", "model", "content", "stop_reason", "stop_sequence", "usage"]
    assert message["content"] == [{"type": "text", "text": "Let me."},
                                  {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": [1, 2]}},
                                  {"type": "tool_use", "id": "toolu_2", "name": "f", "input": {}}]
    assert message["stop_reason"] == "max_tokens" and message["usage"]["input_tokens"] == 40
    assert message["usage"]["output_tokens"] == 20


def test_ids_look_like_anthropics() -> None:
    first, second = new_message_id(), new_message_id()
    assert first.startswith("msg_") and len(first) == 28 and first != second
    assert tool_use_id("call_XyZ") == "toolu_XyZ"
