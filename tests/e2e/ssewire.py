"""Raw SSE reading for the e2e tests: bytes off the socket, framed and parsed here, not by the SDK.

Every check that "the wire" is right must see what the server really sent, so this reads the body
incrementally with httpx, records when each event arrived, and keeps the raw bytes of each event.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

DONE = b"data: [DONE]"
MODEL = "gpt-4o-mini"
"""The notebook's model name, served as an alias of the default model."""


@dataclass
class SSEStream:
    """One streamed response: status, headers, the raw events, their JSON payloads and arrival times."""

    status_code: int
    headers: httpx.Headers
    body: bytes = b""
    raw_events: list[bytes] = field(default_factory=list)
    """Every event without its trailing blank line, comments excluded."""
    chunks: list[dict[str, Any]] = field(default_factory=list)
    """The JSON payload of every ``data:`` event except ``[DONE]``."""
    times: list[float] = field(default_factory=list)
    """Seconds from sending the request to the arrival of each chunk (same order as ``chunks``)."""
    saw_done: bool = False
    total_time: float = 0.0


def read_stream(http: httpx.Client, path: str, body: dict[str, Any]) -> SSEStream:
    """POST ``body`` (``stream`` forced true) and read the whole SSE body, event by event."""
    start = time.monotonic()
    with http.stream("POST", path, json={**body, "stream": True}) as response:
        result = SSEStream(response.status_code, response.headers)
        buffer = b""
        for data in response.iter_bytes():
            result.body += data
            buffer += data
            while b"\n\n" in buffer:
                event, buffer = buffer.split(b"\n\n", 1)
                _take(result, event, time.monotonic() - start)
        assert buffer == b"", f"body ends with an unterminated event: {buffer!r}"
    result.total_time = time.monotonic() - start
    return result


def _take(result: SSEStream, event: bytes, at: float) -> None:
    if event.startswith(b":"):  # an SSE comment (keep-alive): allowed, and skipped by the SDK
        return
    result.raw_events.append(event)
    assert not result.saw_done, f"an event after [DONE]: {event!r}"
    if event == DONE:
        result.saw_done = True
        return
    assert event.startswith(b"data: "), f"not a bare data event: {event!r}"
    payload = event[len(b"data: "):]
    assert payload, "an empty data: line"
    assert b"\n" not in payload and b"\r" not in payload, f"an event spanning lines: {event!r}"
    text = payload.decode("utf-8")  # strict: the wire is valid UTF-8
    result.chunks.append(json.loads(text))
    result.times.append(at)


def choice_chunks(stream: SSEStream, index: int) -> list[dict[str, Any]]:
    """The ``choices`` elements with this index, in order, from every chunk."""
    return [c for chunk in stream.chunks for c in chunk["choices"] if c["index"] == index]


def chat_text(stream: SSEStream, index: int = 0) -> str:
    """The joined ``delta.content`` of one choice."""
    return "".join(c["delta"].get("content") or "" for c in choice_chunks(stream, index))


def completion_text(stream: SSEStream, index: int = 0) -> str:
    """The joined ``text`` of one legacy-completions choice."""
    return "".join(c.get("text") or "" for c in choice_chunks(stream, index))


def finish_reasons(stream: SSEStream) -> dict[int, str]:
    """Each choice's finish reason, from its finish chunk."""
    return {c["index"]: c["finish_reason"] for chunk in stream.chunks for c in chunk["choices"]
            if c["finish_reason"] is not None}
