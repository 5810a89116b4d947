"""An orphan's ending: failed, its partial output rebuilt from the logged events, a response.failed event last."""

from __future__ import annotations

import time

import orjson

from streamserve.api.responses.orphans import LOST_MESSAGE, ending, partial_output
from streamserve.store import StoredEvent, StoredResponse


def event(seq: int, kind: str, **fields: object) -> StoredEvent:
    return StoredEvent(seq, kind, orjson.dumps({"type": kind, "sequence_number": seq, **fields}))


EVENTS = [
    event(0, "response.created", response={"status": "queued"}),
    event(1, "response.in_progress", response={"status": "in_progress"}),
    event(2, "response.output_item.added", output_index=0,
          item={"id": "msg_1", "type": "message", "status": "in_progress", "role": "assistant", "content": []}),
    event(3, "response.content_part.added", item_id="msg_1", output_index=0, content_index=0,
          part={"type": "output_text", "annotations": [], "logprobs": [], "text": ""}),
    event(4, "response.output_text.delta", item_id="msg_1", output_index=0, content_index=0, delta="Hel",
          logprobs=[]),
    event(5, "response.output_text.delta", item_id="msg_1", output_index=0, content_index=0, delta="lo",
          logprobs=[]),
]


def test_partial_output_is_the_text_streamed_so_far() -> None:
    output = partial_output(EVENTS)
    assert len(output) == 1 and output[0]["content"][0]["text"] == "Hello"
    assert output[0]["status"] == "in_progress"


def test_a_finished_item_and_a_call_are_kept_as_streamed() -> None:
    done = {"id": "msg_1", "type": "message", "status": "completed", "role": "assistant",
            "content": [{"type": "output_text", "annotations": [], "logprobs": [], "text": "Hello"}]}
    call = {"id": "fc_1", "type": "function_call", "status": "in_progress", "call_id": "c", "name": "f",
            "arguments": ""}
    output = partial_output([*EVENTS, event(6, "response.output_item.done", output_index=0, item=done),
                             event(7, "response.output_item.added", output_index=1, item=call),
                             event(8, "response.function_call_arguments.delta", item_id="fc_1", output_index=1,
                                   delta='{"a":')])
    assert output[0] == done and output[1]["arguments"] == '{"a":'


def test_an_orphan_ends_failed_with_its_partial_output_and_a_last_event() -> None:
    record = StoredResponse(id="resp_1", created_at=time.time(), status="in_progress", background=True,
                            previous_response_id=None, body=orjson.dumps({"id": "resp_1", "output": []}),
                            expires_at=1e12, logged=True)
    result = ending(LOST_MESSAGE, 60.0)(record, EVENTS)
    body = orjson.loads(result.body)
    assert result.status == "failed" and body["status"] == "failed"
    assert body["error"] == {"code": "server_error", "message": LOST_MESSAGE}
    assert body["output"][0]["status"] == "incomplete" and body["output"][0]["content"][0]["text"] == "Hello"
    assert result.event is not None and result.event.sequence_number == 6 and result.event.type == "response.failed"
    assert orjson.loads(result.event.data)["response"] == body
    assert result.events_expire_at is not None and result.events_expire_at > time.time()
