"""ResponseFormatter with scripted neutral events: event order, sequence numbers, ids, shapes (checked
against the official client's own pydantic types), terminal states."""

from __future__ import annotations

from typing import Any

import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from streamserve.formats.responses import ResponseFormatter, ResponseMeta
from streamserve.generation.events import (
    Finish,
    LogprobEntry,
    ModerationScores,
    TextDelta,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    TopLogprob,
    Usage,
)
from streamserve.moderation import ModerationResult

EVENT = TypeAdapter(ResponseStreamEvent)
FIELDS = {"instructions": None, "max_output_tokens": None, "metadata": {}, "parallel_tool_calls": True,
          "previous_response_id": None, "store": True, "temperature": 1.0, "text": {"format": {"type": "text"}},
          "tool_choice": "auto", "tools": [], "top_logprobs": 0, "top_p": 1.0, "truncation": "disabled",
          "user": None}


def formatter(*, background: bool = False, logprobs: bool = False) -> ResponseFormatter:
    meta = ResponseMeta("resp_test", 1700000000, "gpt-4o-mini", background, FIELDS, logprobs)
    return ResponseFormatter(meta)


def play(f: ResponseFormatter, *events: Any) -> list[dict[str, Any]]:
    out = f.opening()
    for event in events:
        out.extend(f.render(event))
    return out


def check_wire(events: list[dict[str, Any]]) -> None:
    """Every event parses as the SDK's event type, and sequence numbers count 0, 1, 2... by one."""
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    for event in events:
        parsed = EVENT.validate_python(event)
        assert parsed.type == event["type"]
        if "response" in event:
            Response.model_validate(event["response"])


def test_text_answer_has_openais_event_order_and_one_item_id() -> None:
    f = formatter()
    events = play(f, TextDelta(0, "Hello"), TextDelta(0, ", world"), Finish(0, "stop"), Usage(12, 3, 4))
    check_wire(events)
    assert [e["type"] for e in events] == [
        "response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_text.delta", "response.output_text.done",
        "response.content_part.done", "response.output_item.done", "response.completed",
    ]
    created, completed = events[0]["response"], events[-1]["response"]
    assert created["status"] == "in_progress" and created["output"] == [] and created["usage"] is None
    assert completed["status"] == "completed" and isinstance(completed["completed_at"], int)
    ids = {e["item_id"] for e in events if "item_id" in e} | {e["item"]["id"] for e in events if "item" in e}
    assert ids == {completed["output"][0]["id"]} and next(iter(ids)).startswith("msg_")
    assert events[2]["item"] == {"id": next(iter(ids)), "type": "message", "status": "in_progress", "content": [],
                                 "role": "assistant"}
    assert events[6]["text"] == "Hello, world" == completed["output"][0]["content"][0]["text"]
    assert completed["output"][0]["status"] == "completed"
    assert completed["usage"] == {"input_tokens": 12, "input_tokens_details": {"cached_tokens": 4,
                                  "cache_write_tokens": 0}, "output_tokens": 3,
                                  "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 15}
    assert all(e["logprobs"] == [] for e in events if e["type"] == "response.output_text.delta")
    assert f.snapshot() == completed and f.done and f.text == "Hello, world"
    for key, value in FIELDS.items():
        assert completed[key] == value


def test_length_finish_is_incomplete_with_max_output_tokens() -> None:
    events = play(formatter(), TextDelta(0, "1, 2, 3"), Finish(0, "length"), Usage(5, 16))
    check_wire(events)
    last = events[-1]
    assert last["type"] == "response.incomplete"
    assert last["response"]["status"] == "incomplete"
    assert last["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert last["response"]["output"][0]["status"] == "incomplete"
    assert last["response"]["completed_at"] is None


def test_an_empty_answer_still_has_its_message_item() -> None:
    events = play(formatter(), Finish(0, "stop"), Usage(5, 0))
    check_wire(events)
    assert [e["type"] for e in events][2:] == [
        "response.output_item.added", "response.content_part.added", "response.output_text.done",
        "response.content_part.done", "response.output_item.done", "response.completed"]
    assert events[-1]["response"]["output"][0]["content"][0]["text"] == ""


def test_background_is_queued_until_the_first_event() -> None:
    f = formatter(background=True)
    opening = f.opening()
    assert [e["type"] for e in opening] == ["response.created", "response.queued"]
    assert opening[0]["response"]["status"] == "queued" and opening[0]["response"]["background"] is True
    assert f.snapshot()["status"] == "queued"
    events = opening + f.render(TextDelta(0, "Hi")) + f.render(Finish(0, "stop")) + f.render(Usage(1, 1))
    check_wire(events)
    assert events[2]["type"] == "response.in_progress" and events[2]["response"]["status"] == "in_progress"


def test_failure_ends_with_response_failed_and_keeps_partial_output() -> None:
    f = formatter()
    events = play(f, TextDelta(0, "partial"))
    events += f.fail("the server is shutting down", Usage(3, 1))
    check_wire(events)
    failed = events[-1]["response"]
    assert events[-1]["type"] == "response.failed"
    assert failed["status"] == "failed" and failed["error"] == {"code": "server_error",
                                                                  "message": "the server is shutting down"}
    assert failed["output"][0]["status"] == "incomplete" and failed["output"][0]["content"][0]["text"] == "partial"
    assert failed["usage"]["output_tokens"] == 1


def test_cancel_sends_nothing_and_leaves_a_cancelled_snapshot() -> None:
    f = formatter(background=True)
    play(f, TextDelta(0, "abc"))
    f.cancel(Usage(3, 2))
    snapshot = f.snapshot()
    Response.model_validate(snapshot)
    assert snapshot["status"] == "cancelled" and f.done
    assert snapshot["output"][0]["status"] == "incomplete"
    assert snapshot["usage"]["output_tokens"] == 2


def test_logprobs_travel_with_their_delta_and_gather_in_the_part() -> None:
    top = (TopLogprob("a", -0.1, (97,)), TopLogprob("b", -2.5, (98,)))
    first = LogprobEntry("a", -0.1, (97,), top, 0)
    second = LogprobEntry("é", -0.7, (195, 169), (), 1)
    events = play(formatter(logprobs=True), TextDelta(0, "a", (first,)), TextDelta(0, "", (second,)),
                  TextDelta(0, "é"), Finish(0, "stop"), Usage(2, 2))
    check_wire(events)
    deltas = [e for e in events if e["type"] == "response.output_text.delta"]
    assert [d["delta"] for d in deltas] == ["a", "é"]  # no empty delta is sent
    assert deltas[0]["logprobs"] == [{"token": "a", "logprob": -0.1, "bytes": [97], "top_logprobs": [
        {"token": "a", "logprob": -0.1, "bytes": [97]}, {"token": "b", "logprob": -2.5, "bytes": [98]}]}]
    assert [lp["token"] for lp in deltas[1]["logprobs"]] == ["é"]
    done = next(e for e in events if e["type"] == "response.output_text.done")
    assert [lp["token"] for lp in done["logprobs"]] == ["a", "é"]
    part = events[-1]["response"]["output"][0]["content"][0]
    assert [lp["token"] for lp in part["logprobs"]] == ["a", "é"]


@pytest.mark.parametrize("pieces", [["x"], ["日本", "語"], ["a", "b", "c", "d", "e"]])
def test_joined_deltas_equal_the_final_text(pieces: list[str]) -> None:
    events = play(formatter(), *[TextDelta(0, p) for p in pieces], Finish(0, "stop"), Usage(1, len(pieces)))
    joined = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert joined == "".join(pieces) == events[-1]["response"]["output"][0]["content"][0]["text"]


def test_function_calls_are_items_with_argument_events_and_one_set_of_ids() -> None:
    f = formatter()
    events = play(f, TextDelta(0, "Let me check."), ToolCallStart(0, 0, "call_a", "get_weather"),
                  ToolCallDelta(0, 0, '{"city": '), ToolCallDelta(0, 0, '"Paris"}'),
                  ToolCallEnd(0, 0, "call_a", "get_weather", '{"city": "Paris"}'),
                  ToolCallStart(0, 1, "call_b", "get_time"), ToolCallDelta(0, 1, "{}"),
                  ToolCallEnd(0, 1, "call_b", "get_time", "{}"), Finish(0, "tool_calls"), Usage(12, 9))
    check_wire(events)
    assert [e["type"] for e in events][2:] == [
        "response.output_item.added", "response.content_part.added", "response.output_text.delta",
        "response.output_text.done", "response.content_part.done", "response.output_item.done",
        "response.output_item.added", "response.function_call_arguments.delta",
        "response.function_call_arguments.delta", "response.function_call_arguments.done",
        "response.output_item.done",
        "response.output_item.added", "response.function_call_arguments.delta",
        "response.function_call_arguments.done", "response.output_item.done", "response.completed",
    ]
    final = events[-1]["response"]
    assert final["status"] == "completed" and f.text == "Let me check."
    message, first, second = final["output"]
    assert message["type"] == "message" and message["status"] == "completed"
    assert first == {"id": first["id"], "type": "function_call", "status": "completed",
                     "arguments": '{"city": "Paris"}', "call_id": "call_a", "name": "get_weather"}
    assert first["id"].startswith("fc_") and second["call_id"] == "call_b" and second["arguments"] == "{}"
    added = [e for e in events if e["type"] == "response.output_item.added"]
    assert added[1]["item"] == {**first, "status": "in_progress", "arguments": ""} and added[1]["output_index"] == 1
    deltas = [e for e in events if e["type"] == "response.function_call_arguments.delta"]
    assert {e["item_id"] for e in deltas[:2]} == {first["id"]} and deltas[2]["output_index"] == 2
    done = [e for e in events if e["type"] == "response.function_call_arguments.done"]
    assert [d["arguments"] for d in done] == ['{"city": "Paris"}', "{}"] and done[0]["name"] == "get_weather"
    assert f.snapshot() == final


def test_a_call_cut_by_the_token_limit_is_incomplete() -> None:
    f = formatter()
    events = play(f, ToolCallStart(0, 0, "call_a", "get_weather"), ToolCallDelta(0, 0, '{"ci'), Finish(0, "length"),
                  Usage(12, 16))
    check_wire(events)
    final = events[-1]["response"]
    assert events[-1]["type"] == "response.incomplete"
    assert final["incomplete_details"] == {"reason": "max_output_tokens"}
    assert final["output"][0]["status"] == "incomplete" and final["output"][0]["arguments"] == '{"ci'


def test_a_filtered_answer_is_incomplete_with_content_filter_and_reports_its_scores() -> None:
    f = formatter()
    flagged = ModerationResult(frozenset({"harassment"}), {"harassment": 1.0})
    events = play(f, TextDelta(0, "You are"), Finish(0, "content_filter"),
                  ModerationScores("streamserve-rules", (ModerationResult(),), (flagged,)), Usage(12, 5))
    check_wire(events)
    final = events[-1]["response"]
    assert events[-1]["type"] == "response.incomplete" and final["incomplete_details"] == {"reason": "content_filter"}
    assert final["output"][0]["status"] == "incomplete" and final["output"][0]["content"][0]["text"] == "You are"
    moderation = Response.model_validate(final).moderation
    assert moderation is not None and moderation.output.type == "moderation_result"
    assert moderation.output.flagged and moderation.output.categories["harassment"]
    assert not moderation.input.flagged and moderation.input.model == "streamserve-rules"
