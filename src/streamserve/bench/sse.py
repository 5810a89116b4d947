"""Client-side Server-Sent Events parsing with a timestamp on every event.

The benchmark reads the response body line by line, so that each event is stamped the moment its
terminating blank line arrives, not when the whole body is in. This module is the client's own SSE
reader (the WHATWG event-stream rules, restricted to what OpenAI-style streams use); it shares
nothing with the server's framing code.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterable, Callable
from dataclasses import dataclass
from typing import Any

import orjson

DONE_SENTINEL = "[DONE]"


class StreamError(Exception):
    """The server sent an error event (``data: {"error": {...}}``) after the stream had begun."""


class MalformedEventError(Exception):
    """An event's data is neither JSON nor ``[DONE]``; the SDK would raise on it too."""


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One dispatched event: its joined ``data`` lines and the clock reading when it completed.

    ``lines`` are the event's field lines as they came (comments excluded), for strict framing
    checks; ``terminated`` is False for a last event that the body ended without a blank line.
    """

    data: str
    time: float
    event: str = ""
    lines: tuple[str, ...] = ()
    terminated: bool = True


@dataclass(frozen=True, slots=True)
class TimedChunk:
    """One JSON chunk of an OpenAI-style stream and the clock reading when it arrived."""

    payload: dict[str, Any]
    time: float


class SSEDecoder:
    """Incremental event-stream decoder: feed it lines, it returns each event when it completes.

    Comment lines (starting with ``:``) are skipped, ``data`` lines are joined with ``\\n``, an
    ``event`` line names the event, other fields (``id``, ``retry``) are ignored, and a blank line
    dispatches the event if it has any data. ``comments`` counts the comment lines seen and
    ``last_lines`` holds the field lines of the event just dispatched.
    """

    def __init__(self) -> None:
        """Start with an empty event buffer."""
        self._data: list[str] = []
        self._event = ""
        self._lines: list[str] = []
        self.last_lines: tuple[str, ...] = ()
        self.comments = 0

    def feed(self, line: str) -> tuple[str, str] | None:
        """Take one line without its terminator; return ``(event, data)`` when it completes one."""
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            self.comments += 1
            return None
        self._lines.append(line)
        field, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._event = value
        return None

    def flush(self) -> tuple[str, str] | None:
        """At end of body: return an event still missing its blank line (tolerated, not required)."""
        return self._dispatch()

    def _dispatch(self) -> tuple[str, str] | None:
        self.last_lines = tuple(self._lines)
        self._lines = []
        if not self._data:
            self._event = ""
            return None
        result = (self._event, "\n".join(self._data))
        self._data = []
        self._event = ""
        return result


async def aiter_events(
    lines: AsyncIterable[str], clock: Callable[[], float] = time.perf_counter, decoder: SSEDecoder | None = None
) -> AsyncGenerator[SSEEvent, None]:
    """Yield every event of a line stream, stamped with ``clock()`` when its last line arrived."""
    decoder = decoder or SSEDecoder()
    async for line in lines:
        completed = decoder.feed(line.rstrip("\r\n"))
        if completed is not None:
            yield SSEEvent(completed[1], clock(), completed[0], decoder.last_lines)
    completed = decoder.flush()
    if completed is not None:
        yield SSEEvent(completed[1], clock(), completed[0], decoder.last_lines, terminated=False)


def decode_data(data: str) -> dict[str, Any] | None:
    """Decode one event's data: a JSON object, or ``None`` for ``[DONE]``.

    Raises ``StreamError`` for an error event and ``MalformedEventError`` for anything that is not a
    JSON object.
    """
    if data.strip() == DONE_SENTINEL:
        return None
    try:
        payload = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise MalformedEventError(f"event data is not JSON: {data[:80]!r}") from exc
    if not isinstance(payload, dict):
        raise MalformedEventError(f"event data is not a JSON object: {data[:80]!r}")
    if payload.get("error") is not None:
        raise StreamError(error_message(payload["error"]))
    return payload


def error_message(error: object) -> str:
    """The human message of an OpenAI error object (or whatever the server put there)."""
    if isinstance(error, dict):
        message = error.get("message")
        kind = error.get("type")
        text = str(message) if message is not None else orjson.dumps(error).decode()
        return f"{kind}: {text}" if kind else text
    return str(error)


class SSEReader:
    """Reads the JSON chunks of an OpenAI-style stream until ``[DONE]``.

    Iterate ``chunks()``; afterwards ``saw_done`` tells whether the stream ended with ``[DONE]``
    (False means the body simply stopped). Error events raise ``StreamError``. With
    ``keep=True`` every event read is kept in ``events`` (for a wire checker), and ``drain()``
    reads on to the end of the body, keeping whatever came after ``[DONE]`` or an error event.
    """

    def __init__(
        self, lines: AsyncIterable[str], clock: Callable[[], float] = time.perf_counter, *, keep: bool = False
    ) -> None:
        """Wrap a line stream, typically ``httpx.Response.aiter_lines()``."""
        self._decoder = SSEDecoder()
        self._events = aiter_events(lines, clock, self._decoder)
        self._keep = keep
        self.events: list[SSEEvent] = []
        self.saw_done = False
        self.done_time: float | None = None

    @property
    def comments(self) -> int:
        """Comment lines (keep-alives) seen so far."""
        return self._decoder.comments

    async def chunks(self) -> AsyncGenerator[TimedChunk, None]:
        """Yield each JSON chunk with its arrival time; stop at ``[DONE]``."""
        async for event in self._events:
            if self._keep:
                self.events.append(event)
            payload = decode_data(event.data)
            if payload is None:
                self.saw_done = True
                self.done_time = event.time
                return
            yield TimedChunk(payload=payload, time=event.time)

    async def drain(self) -> list[SSEEvent]:
        """Read to the end of the body; return the events found there (kept in ``events`` too)."""
        rest = [event async for event in self._events]
        if self._keep:
            self.events.extend(rest)
        return rest

    async def aclose(self) -> None:
        """Stop reading (a client hanging up early); the body itself is closed by its owner."""
        await self._events.aclose()
