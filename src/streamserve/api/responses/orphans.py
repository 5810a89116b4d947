"""How a response whose server is gone ends: ``failed``, with the output its event log shows so far.

A background response's events are all logged, so the text and calls generated before the server
died are rebuilt from them (items still open become ``incomplete``) and kept in the failed object. A
response without a log keeps the object as last stored.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import orjson

from streamserve.store import Ending, EndOrphan, StoredEvent, StoredResponse

RESTART_MESSAGE = "The server restarted while this response was generating; it was not finished."
LOST_MESSAGE = ("The replica running this response was lost (it stopped renewing its lease); it was not finished. "
                "The output generated before is kept.")


def ending(message: str, events_ttl: float) -> EndOrphan:
    """The ``EndOrphan`` the store calls for each orphan: failed with ``message``, partial output kept."""
    def end(record: StoredResponse, events: list[StoredEvent]) -> Ending:
        body = orjson.loads(record.body)
        if events:
            body["output"] = partial_output(events)
        body.update(status="failed", error={"code": "server_error", "message": message})
        for item in body.get("output", []):
            if item.get("status") == "in_progress":
                item["status"] = "incomplete"
        event = None
        if record.logged:
            seq = events[-1].sequence_number + 1 if events else 0
            event = StoredEvent(seq, "response.failed",
                                orjson.dumps({"type": "response.failed", "sequence_number": seq, "response": body}))
        expire = time.time() + events_ttl if record.logged else None
        return Ending("failed", orjson.dumps(body), event, expire)

    return end


def partial_output(events: list[StoredEvent]) -> list[dict[str, Any]]:
    """The output items a stream's events describe so far, in output order."""
    items: dict[int, dict[str, Any]] = {}
    for stored in events:
        event = orjson.loads(stored.data)
        kind, index = event.get("type"), event.get("output_index")
        if kind == "response.output_item.added" or kind == "response.output_item.done":
            items[index] = copy.deepcopy(event["item"])
            continue
        item = items.get(index) if index is not None else None
        if item is None:
            continue
        if kind == "response.content_part.added":
            content = item.setdefault("content", [])
            content[event["content_index"]:event["content_index"] + 1] = [copy.deepcopy(event["part"])]
        elif kind == "response.output_text.delta":
            part = item.get("content", [])[event["content_index"]]
            part["text"] = part.get("text", "") + event["delta"]
            part.setdefault("logprobs", []).extend(event.get("logprobs") or [])
        elif kind == "response.function_call_arguments.delta":
            item["arguments"] = item.get("arguments", "") + event["delta"]
    return [items[i] for i in sorted(items)]
