"""The Responses API on the real model, through the official client (and raw bytes where the wire matters).

The session server (8 lanes, a temporary data directory) serves every test here; requests are greedy
and short. Background and resume tests use counting prompts, which keep the model going.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import openai
import orjson
import pytest
from openai import OpenAI

from tests.e2e.ssewire import MODEL
from tests.serverproc import ServerProcess

pytestmark = pytest.mark.e2e

COUNT = "Count from 1 to 200, separated by commas."
SHORT = "What is 2+2? Answer in one short sentence."
TEXT_EVENTS = [
    "response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
    "response.output_text.delta", "response.output_text.done", "response.content_part.done",
    "response.output_item.done",
]


def read_named_events(http: httpx.Client, method: str, path: str, **kwargs: Any) -> list[tuple[str, dict[str, Any]]]:
    """Every ``event: <type>`` / ``data: <json>`` pair of a Responses stream, checking the framing byte by byte."""
    with http.stream(method, path, **kwargs) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        body = response.read()
    assert b"[DONE]" not in body and body.endswith(b"\n\n")
    events = []
    for frame in body.decode().split("\n\n")[:-1]:
        if frame.startswith(":"):
            continue
        name_line, data_line = frame.split("\n")
        assert name_line.startswith("event: ") and data_line.startswith("data: "), frame
        data = orjson.loads(data_line.removeprefix("data: "))
        assert data["type"] == name_line.removeprefix("event: ")
        events.append((data["type"], data))
    return events


def collapse(types: list[str]) -> list[str]:
    """The event types with runs of deltas folded into one."""
    out: list[str] = []
    for kind in types:
        if not (out and out[-1] == kind == "response.output_text.delta"):
            out.append(kind)
    return out


def deltas_text(events: list[Any]) -> str:
    return "".join(e.delta for e in events if e.type == "response.output_text.delta")


def wait_until_done(client: OpenAI, response_id: str, deadline_s: float = 300.0) -> Any:
    deadline = time.monotonic() + deadline_s
    while True:
        response = client.responses.retrieve(response_id)
        if response.status not in ("queued", "in_progress") or time.monotonic() > deadline:
            return response
        time.sleep(0.2)


def test_stream_is_openais_event_sequence_with_one_set_of_ids(http: httpx.Client) -> None:
    body = {"model": MODEL, "input": SHORT, "stream": True, "temperature": 0, "max_output_tokens": 40}
    events = read_named_events(http, "POST", "/responses", json=body)
    types = [t for t, _ in events]
    assert collapse(types) == [*TEXT_EVENTS, "response.completed"] or \
        collapse(types) == [*TEXT_EVENTS, "response.incomplete"]
    assert [d["sequence_number"] for _, d in events] == list(range(len(events)))
    created, final = events[0][1]["response"], events[-1][1]["response"]
    for snapshot in (created, final):
        for key in ("id", "object", "created_at", "status", "model", "output", "usage", "instructions",
                    "max_output_tokens", "temperature", "top_p", "truncation", "store", "background", "metadata",
                    "text", "tools", "tool_choice", "parallel_tool_calls", "previous_response_id", "error",
                    "incomplete_details"):
            assert key in snapshot, key
    assert created["id"] == final["id"] and created["id"].startswith("resp_")
    assert created["status"] == "in_progress" and created["output"] == [] and created["usage"] is None
    assert created["model"] == MODEL and isinstance(created["created_at"], int)
    item_ids = {d["item_id"] for _, d in events if "item_id" in d} | {d["item"]["id"] for _, d in events if "item" in d}
    assert item_ids == {final["output"][0]["id"]}
    joined = "".join(d["delta"] for t, d in events if t == "response.output_text.delta")
    assert joined and joined == final["output"][0]["content"][0]["text"]
    usage = final["usage"]
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"] > 0
    assert "cached_tokens" in usage["input_tokens_details"]


def test_stream_helper_final_response_equals_the_joined_deltas(client: OpenAI) -> None:
    with client.responses.stream(model=MODEL, input=SHORT, temperature=0, max_output_tokens=40) as stream:
        events = list(stream)
        final = stream.get_final_response()
    assert events[0].type == "response.created"
    assert final.status == "completed" and final.output_text == deltas_text(events) != ""
    again = client.responses.create(model=MODEL, input=SHORT, temperature=0, max_output_tokens=40)
    assert again.output_text == final.output_text  # streamed and not, greedy: the same text


def test_max_output_tokens_gives_incomplete_and_below_16_is_openais_400(client: OpenAI) -> None:
    response = client.responses.create(model=MODEL, input=COUNT, temperature=0, max_output_tokens=16)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None and response.incomplete_details.reason == "max_output_tokens"
    assert response.usage is not None and response.usage.output_tokens == 16
    assert response.output[0].status == "incomplete"
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model=MODEL, input=COUNT, max_output_tokens=1)
    error = info.value.body
    assert error["param"] == "max_output_tokens" and error["code"] == "integer_below_min_value"
    assert error["message"] == ("Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16, "
                                "but got 1 instead.")


def test_retrieve_input_items_and_delete(client: OpenAI) -> None:
    turns = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
             {"role": "assistant", "content": [{"type": "output_text", "text": "Hello!"}]},
             {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Name a color."}]}]
    created = client.responses.create(model=MODEL, input=turns, temperature=0, max_output_tokens=16,
                                      metadata={"case": "items"})
    got = client.responses.retrieve(created.id)
    assert got.id == created.id and got.output_text == created.output_text and got.metadata == {"case": "items"}
    assert got.output[0].id == created.output[0].id
    items = client.responses.input_items.list(created.id)  # newest first, OpenAI's default
    assert [i.role for i in items.data] == ["user", "assistant", "user", "system"]
    assert items.data[0].content[0].text == "Name a color." and not items.has_more
    first = client.responses.input_items.list(created.id, order="asc", limit=2)
    assert [i.role for i in first.data] == ["system", "user"] and first.has_more
    rest = client.responses.input_items.list(created.id, order="asc", limit=2, after=first.data[-1].id)
    assert [i.role for i in rest.data] == ["assistant", "user"] and not rest.has_more
    assert len({i.id for i in [*first.data, *rest.data]}) == 4
    every = list(client.responses.input_items.list(created.id, order="asc", limit=1))  # the SDK pages with after
    assert [i.id for i in every] == [i.id for i in [*first.data, *rest.data]]
    client.responses.delete(created.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(created.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.input_items.list(created.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(created.id)


def test_store_false_is_not_retrievable(client: OpenAI) -> None:
    response = client.responses.create(model=MODEL, input=SHORT, store=False, temperature=0, max_output_tokens=16)
    assert response.store is False and response.output_text
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model=MODEL, input=SHORT, previous_response_id=response.id)
    assert info.value.body["param"] == "previous_response_id"


def test_chain_rebuilds_the_conversation_and_reuses_the_prompt_cache(client: OpenAI) -> None:
    intro = "My name is Ada. I live by the sea, I keep bees and I repair old clocks. " * 5 + "Remember my name."
    first = client.responses.create(model=MODEL, input=intro, instructions="Be brief.",
                                    temperature=0, max_output_tokens=24)
    second = client.responses.create(model=MODEL, input="What is my name?", previous_response_id=first.id,
                                     instructions="Be brief.", temperature=0, max_output_tokens=24)
    assert second.previous_response_id == first.id
    assert first.usage is not None and second.usage is not None
    assert second.usage.input_tokens > first.usage.input_tokens + first.usage.output_tokens - 8
    # Turn 1's whole 64-token grid chunks came from the cache (docs/determinism.md).
    assert second.usage.input_tokens_details.cached_tokens == first.usage.input_tokens // 64 * 64 > 0
    third = client.responses.create(model=MODEL, input="Thanks.", previous_response_id=second.id,
                                    temperature=0, max_output_tokens=16)
    assert third.instructions is None  # earlier instructions are not carried over
    assert third.usage is not None and third.usage.input_tokens > second.usage.input_tokens - 8
    assert [i.content[0].text for i in client.responses.input_items.list(third.id)] == ["Thanks."]


def test_unknown_or_deleted_previous_response_is_a_400_never_an_empty_answer(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model=MODEL, input="Hi", previous_response_id="resp_doesnotexist")
    assert info.value.body["param"] == "previous_response_id"
    assert info.value.body["code"] == "previous_response_not_found"
    first = client.responses.create(model=MODEL, input="Hi", temperature=0, max_output_tokens=16)
    second = client.responses.create(model=MODEL, input="Again", previous_response_id=first.id, temperature=0,
                                     max_output_tokens=16)
    client.responses.delete(first.id)
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model=MODEL, input="More", previous_response_id=second.id)
    assert first.id in info.value.body["message"] and info.value.body["param"] == "previous_response_id"


def test_background_is_queued_then_polled_to_completion(client: OpenAI) -> None:
    response = client.responses.create(model=MODEL, input=SHORT, background=True, temperature=0,
                                       max_output_tokens=40)
    assert response.status in ("queued", "in_progress") and response.background is True
    final = wait_until_done(client, response.id)
    assert final.status == "completed" and final.output_text
    with client.responses.stream(response_id=response.id) as stream:  # the helper replays it from the start
        assert stream.get_final_response().output_text == final.output_text
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model=MODEL, input=SHORT, background=True, store=False)
    assert info.value.body["param"] == "store"


def test_background_stream_dropped_after_five_deltas_resumes_without_gap_or_repeat(client: OpenAI) -> None:
    stream = client.responses.create(model=MODEL, input=COUNT, background=True, stream=True, temperature=0,
                                     max_output_tokens=96)
    seen: list[Any] = []
    for event in stream:
        seen.append(event)
        if sum(e.type == "response.output_text.delta" for e in seen) == 5:
            break
    stream.close()
    assert [e.type for e in seen][:3] == ["response.created", "response.queued", "response.in_progress"]
    response_id, cursor = seen[0].response.id, seen[-1].sequence_number
    rest = list(client.responses.retrieve(response_id, stream=True, starting_after=cursor))
    events = seen + rest
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[-1].type in ("response.completed", "response.incomplete")
    final = client.responses.retrieve(response_id)
    assert deltas_text(events) == final.output_text != ""
    assert final.usage is not None and final.usage.output_tokens > 5
    replay = list(client.responses.retrieve(response_id, stream=True))
    assert [e.model_dump() for e in replay] == [e.model_dump() for e in events]


def test_a_stored_foreground_stream_can_be_replayed_and_a_non_streamed_one_cannot(
        client: OpenAI, http: httpx.Client) -> None:
    body = {"model": MODEL, "input": SHORT, "stream": True, "temperature": 0, "max_output_tokens": 24}
    events = read_named_events(http, "POST", "/responses", json=body)
    response_id = events[0][1]["response"]["id"]
    replayed = read_named_events(http, "GET", f"/responses/{response_id}", params={"stream": "true"})
    assert replayed == events
    plain = client.responses.create(model=MODEL, input=SHORT, temperature=0, max_output_tokens=16)
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.retrieve(plain.id, stream=True)
    assert info.value.body["param"] == "stream"


def test_cancel_stops_a_background_response_and_is_idempotent(client: OpenAI) -> None:
    response = client.responses.create(model=MODEL, input=COUNT, background=True, temperature=0,
                                       max_output_tokens=2000)
    deadline = time.monotonic() + 300
    while not client.responses.retrieve(response.id).output_text and time.monotonic() < deadline:
        time.sleep(0.2)
    cancelled = client.responses.cancel(response.id)
    assert cancelled.status == "cancelled"
    assert cancelled.usage is not None and 0 < cancelled.usage.output_tokens < 2000
    tokens = cancelled.usage.output_tokens
    time.sleep(1.0)
    later = client.responses.retrieve(response.id)
    assert later.status == "cancelled" and later.usage is not None and later.usage.output_tokens == tokens
    assert client.responses.cancel(response.id).status == "cancelled"
    replay = list(client.responses.retrieve(response.id, stream=True))  # its log ends where it stopped
    assert replay and deltas_text(replay) == later.output_text
    plain = client.responses.create(model=MODEL, input=SHORT, temperature=0, max_output_tokens=16)
    with pytest.raises(openai.BadRequestError):
        client.responses.cancel(plain.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.cancel("resp_doesnotexist")


def test_chaining_from_a_running_response_is_refused_until_it_ends(client: OpenAI) -> None:
    running = client.responses.create(model=MODEL, input=COUNT, background=True, temperature=0,
                                      max_output_tokens=2000)
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model=MODEL, input="Go on.", previous_response_id=running.id)
    assert info.value.body["param"] == "previous_response_id" and "still" in info.value.body["message"]
    client.responses.cancel(running.id)
    chained = client.responses.create(model=MODEL, input="Go on.", previous_response_id=running.id, temperature=0,
                                      max_output_tokens=16)
    assert chained.status in ("completed", "incomplete")


def test_deleting_a_foreground_stream_mid_way_lets_it_finish_unrecorded(
        client: OpenAI, http: httpx.Client, server: ServerProcess) -> None:
    body = {"model": MODEL, "input": COUNT, "stream": True, "temperature": 0, "max_output_tokens": 64}
    with http.stream("POST", "/responses", json=body) as response:
        lines = response.iter_lines()
        first = next(line for line in lines if line.startswith("data: "))
        response_id = orjson.loads(first.removeprefix("data: "))["response"]["id"]
        client.responses.delete(response_id)
        rest = [line for line in lines if line.startswith("event: ")]
    assert rest[-1] in ("event: response.completed", "event: response.incomplete")
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response_id)
    assert "store write failed" not in server.log()


def test_logprobs_are_included_when_asked(client: OpenAI) -> None:
    response = client.responses.create(model=MODEL, input=SHORT, temperature=0, max_output_tokens=16,
                                       include=["message.output_text.logprobs"], top_logprobs=2)
    part = response.output[0].content[0]
    assert part.logprobs and all(len(lp.top_logprobs) == 2 for lp in part.logprobs)
    assert "".join(lp.token for lp in part.logprobs) == part.text
    plain = client.responses.create(model=MODEL, input=SHORT, temperature=0, max_output_tokens=16)
    assert plain.output[0].content[0].logprobs == []


def test_truncation_disabled_refuses_an_overlong_input_and_auto_drops_the_oldest_items(client: OpenAI) -> None:
    huge = "lorem ipsum dolor sit amet " * 450  # about 4,500 tokens: alone over the 4,096-token context
    turns = [{"role": "user", "content": huge}, {"role": "assistant", "content": "Noted."},
             {"role": "user", "content": "My name is Ada."}, {"role": "assistant", "content": "Hello, Ada."},
             {"role": "user", "content": "Say OK."}]
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model=MODEL, input=turns, max_output_tokens=16)
    assert info.value.body["code"] == "context_length_exceeded" and info.value.body["param"] == "input"
    response = client.responses.create(model=MODEL, input=turns, truncation="auto", temperature=0,
                                       max_output_tokens=16)
    assert response.truncation == "auto" and response.status in ("completed", "incomplete")
    alone = client.responses.create(model=MODEL, input=turns[-1:], temperature=0, max_output_tokens=16)
    assert response.usage is not None and alone.usage is not None
    assert response.usage.input_tokens < 200  # the huge item went
    assert response.usage.input_tokens > alone.usage.input_tokens + 10  # the later items stayed


@pytest.mark.parametrize(("extra", "param"), [
    ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
    ({"tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}]}, "tools"),
    ({"tool_choice": "required"}, "tool_choice"),
    ({"conversation": "conv_123"}, "conversation"),
    ({"text": {"format": {"type": "json_schema", "name": "x", "schema": {"type": "object"}}}}, "text.format"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "http://x/y.png"}]}]},
     "input[0].content[0]"),
    ({"input": [{"type": "function_call_output", "call_id": "c", "output": "{}"}]}, "input[0]"),
    ({"stream_options": {"include_obfuscation": False}}, "stream_options"),
])
def test_what_the_server_cannot_do_is_a_400_naming_the_param(client: OpenAI, extra: dict[str, Any],
                                                             param: str) -> None:
    body = {"model": MODEL, "input": "Hi", **extra}
    with pytest.raises(openai.BadRequestError) as info:
        client.post("/responses", body=body, cast_to=httpx.Response)
    assert info.value.body["param"] == param, info.value.body
    assert info.value.body["type"] == "invalid_request_error"


def test_unknown_fields_are_ignored_and_unknown_models_are_404(client: OpenAI) -> None:
    response = client.responses.create(model=MODEL, input=SHORT, temperature=0, max_output_tokens=16,
                                       extra_body={"some_vendor_field": 1}, reasoning={"effort": "low"},
                                       service_tier="auto", user="u-1")
    assert response.status == "completed" and response.user == "u-1"
    with pytest.raises(openai.NotFoundError) as info:
        client.responses.create(model="no-such-model", input="Hi")
    assert info.value.body["code"] == "model_not_found"
