"""bench/sse.py: line decoding, timestamps, [DONE], comments and error events."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import pytest

from streamserve.bench.sse import (
    MalformedEventError,
    SSEDecoder,
    SSEEvent,
    SSEReader,
    StreamError,
    TimedChunk,
    aiter_events,
    decode_data,
)


async def _lines(*lines: str) -> AsyncIterator[str]:
    for line in lines:
        yield line


def _clock() -> object:
    counter = itertools.count(1)
    return lambda: float(next(counter))


def events(*lines: str) -> list[SSEEvent]:
    async def go() -> list[SSEEvent]:
        return [e async for e in aiter_events(_lines(*lines), _clock())]  # type: ignore[arg-type]

    return asyncio.run(go())


def read(*lines: str) -> tuple[list[TimedChunk], SSEReader]:
    reader = SSEReader(_lines(*lines), _clock())  # type: ignore[arg-type]

    async def go() -> list[TimedChunk]:
        return [c async for c in reader.chunks()]

    return asyncio.run(go()), reader


def test_decoder_fields() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(": keep-alive") is None
    assert decoder.feed("") is None  # a blank line with no data dispatches nothing
    assert decoder.feed("event: message") is None
    assert decoder.feed("id: 7") is None
    assert decoder.feed("data: a") is None
    assert decoder.feed("data:b") is None  # no space after the colon is allowed
    assert decoder.feed("data:  c") is None  # only one leading space is stripped
    assert decoder.feed("") == ("message", "a\nb\n c")
    assert decoder.feed("data") is None  # a field with no colon has an empty value
    assert decoder.flush() == ("", "")


def test_events_are_stamped_when_they_complete() -> None:
    got = events(": ping", "data: {}", "", "data: [DONE]", "")
    assert [(e.data, e.time) for e in got] == [("{}", 1.0), ("[DONE]", 2.0)]


def test_crlf_and_unterminated_last_event() -> None:
    got = events("data: 1\r\n", "\r\n", "data: 2")
    assert [e.data for e in got] == ["1", "2"]


def test_reader_stops_at_done() -> None:
    chunks, reader = read('data: {"a": 1}', "", "data: [DONE]", "", 'data: {"after": true}', "")
    assert [c.payload for c in chunks] == [{"a": 1}]
    assert reader.saw_done and reader.done_time == 2.0


def test_reader_without_done() -> None:
    chunks, reader = read('data: {"a": 1}', "")
    assert len(chunks) == 1 and not reader.saw_done and reader.done_time is None


def test_error_event_raises() -> None:
    with pytest.raises(StreamError, match="server_error: boom"):
        read('data: {"a": 1}', "", 'data: {"error": {"message": "boom", "type": "server_error"}}', "")


def test_decode_data() -> None:
    assert decode_data("[DONE]") is None
    assert decode_data('{"x": null, "error": null}') == {"x": None, "error": None}
    with pytest.raises(MalformedEventError):
        decode_data("not json")
    with pytest.raises(MalformedEventError):
        decode_data("[1, 2]")
    with pytest.raises(StreamError, match="oops"):
        decode_data('{"error": "oops"}')


def test_events_keep_their_field_lines_and_end() -> None:
    got = events(": ping", "event: x", "data: 1", "", "data: 2")
    assert [(e.lines, e.terminated) for e in got] == [(("event: x", "data: 1"), True), (("data: 2",), False)]


def test_keep_and_drain_see_what_follows_done() -> None:
    reader = SSEReader(_lines(": ka", 'data: {"a": 1}', "", "data: [DONE]", "", "data: late", ""),
                       _clock(), keep=True)  # type: ignore[arg-type]

    async def go() -> list[SSEEvent]:
        _ = [c async for c in reader.chunks()]
        return await reader.drain()

    rest = asyncio.run(go())
    assert [e.data for e in rest] == ["late"]
    assert [e.data for e in reader.events] == ['{"a": 1}', "[DONE]", "late"] and reader.comments == 1
