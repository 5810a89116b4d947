"""soaklib/wire.py: a well-formed stream passes, each broken rule is reported, the server's own chunks pass."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from typing import Any

import pytest
from soaklib.wire import StreamSpec, check_stream

from streamserve.bench.sse import SSEEvent, aiter_events
from streamserve.formats import sse
from streamserve.formats.completions import ChunkFormatter, CompletionMeta, Shape
from streamserve.generation.events import Event, Finish, LogprobEntry, TextDelta, TopLogprob, Usage

from .wirestreams import chat_logprobs, envelope, event, events, stream

CHAT = StreamSpec("chat", max_tokens=3)


def rules(spec: StreamSpec, evs: list[SSEEvent], *, complete: bool = True) -> list[str]:
    return [v.rule for v in check_stream(spec, evs, complete=complete).violations]


def test_well_formed_streams_pass() -> None:
    cases = [
        (StreamSpec("chat", max_tokens=3), stream()),
        (StreamSpec("completions", max_tokens=3), stream(chat=False)),
        (StreamSpec("chat", n=2, max_tokens=3, include_usage=True, logprobs=2, greedy=True),
         stream(choices=[["a", "b", "c"], ["d", "e"]], usage=True, logprobs=2)),
        (StreamSpec("completions", n=2, max_tokens=3, include_usage=True, logprobs=3, greedy=True),
         stream(chat=False, choices=[["a", "b"], ["c"]], usage=True, logprobs=3)),
    ]
    for spec, chunks in cases:
        check = check_stream(spec, events(chunks))
        assert check.violations == [], (spec, check.violations)
        assert check.saw_done and check.chunks == len(chunks)
    check = check_stream(cases[2][0], events(cases[2][1]))
    assert [check.choices[i].text for i in (0, 1)] == ["abc", "de"]
    assert [check.choices[i].content_chunks for i in (0, 1)] == [3, 2]
    assert check.choices[0].logprobs.entries == 3 and check.choices[0].logprobs.joined() == "abc"
    assert check.usage == {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}


def _server_events(shape: Shape, n: int, include_usage: bool, items: list[Event]) -> list[SSEEvent]:
    meta = CompletionMeta(shape, "chatcmpl-x" if shape is Shape.CHAT else "cmpl-x", 1, "m", n, include_usage, "fp")
    formatter = ChunkFormatter(meta)
    body = b"".join(sse.encode(c) for c in formatter.opening())
    body += b"".join(sse.encode(c) for item in items for c in formatter.render(item)) + sse.DONE

    async def lines() -> AsyncIterator[str]:
        for line in body.decode().split("\n"):
            yield line

    async def go() -> list[SSEEvent]:
        return [e async for e in aiter_events(lines())]

    return asyncio.run(go())


@pytest.mark.parametrize("shape", [Shape.CHAT, Shape.COMPLETION])
def test_the_servers_own_chunk_formatter_passes(shape: Shape) -> None:
    def entry(text: str, offset: int) -> LogprobEntry:
        data = tuple(text.encode())
        return LogprobEntry(text, -0.5, data, (TopLogprob(text, -0.5, data), TopLogprob("x", -2.0, (120,))), offset)

    items: list[Event] = [
        TextDelta(0, "Hi", (entry("Hi", 0),)), TextDelta(1, "中", (entry("中", 0),)),
        TextDelta(0, " there", (entry(" there", 2),)), Finish(0, "length"), Finish(1, "stop"),
        Usage(prompt_tokens=5, completion_tokens=3, cached_tokens=0),
    ]
    endpoint = "chat" if shape is Shape.CHAT else "completions"
    spec = StreamSpec(endpoint, n=2, max_tokens=2, logprobs=2, include_usage=True, greedy=True)
    check = check_stream(spec, _server_events(shape, 2, True, items))
    assert check.violations == []
    assert check.choices[0].text == "Hi there" and check.choices[1].text == "中"


def test_framing() -> None:
    good = events(stream())
    assert rules(CHAT, [*good, event('{"late": 1}')]) == ["framing"]
    assert rules(CHAT, good[:-1]) == ["framing"]  # no [DONE]
    assert "framing" in rules(CHAT, [SSEEvent(good[0].data, 0, "message", ("event: message", good[0].lines[0])),
                                     *good[1:]])
    assert "framing" in rules(CHAT, [good[0], event("not json"), *good[1:]])
    assert "framing" in rules(CHAT, [*good[:-1], SSEEvent("[DONE]", 0, "", ("data: [DONE]",), terminated=False)])


def test_role_and_finish() -> None:
    chunks = stream()
    assert "role" in rules(CHAT, events(chunks[1:]))  # no role chunk
    again = copy.deepcopy(chunks)
    again[2]["choices"][0]["delta"]["role"] = "assistant"
    assert rules(CHAT, events(again)) == ["role"]
    assert rules(CHAT, events([*chunks, chunks[-1]])) == ["finish", "finish", "finish"]
    content_on_finish = copy.deepcopy(chunks)
    content_on_finish[-1]["choices"][0]["delta"] = {"content": "x"}
    assert "finish" in rules(CHAT, events(content_on_finish))
    after_finish = [*chunks, chunks[2]]
    assert "finish" in rules(CHAT, events(after_finish))
    unknown = copy.deepcopy(chunks)
    unknown[-1]["choices"][0]["finish_reason"] = "eos"
    assert rules(CHAT, events(unknown)) == ["finish"]
    assert "finish" in rules(CHAT, events(chunks[:-1]))  # never finished


def test_envelope_and_choices() -> None:
    chunks = stream()
    changed = copy.deepcopy(chunks)
    changed[2]["id"] = "chatcmpl-2"
    assert rules(CHAT, events(changed)) == ["envelope"]
    wrong_object = copy.deepcopy(chunks)
    wrong_object[1]["object"] = "chat.completion"
    assert rules(CHAT, events(wrong_object)) == ["envelope"]
    out_of_range = copy.deepcopy(chunks)
    out_of_range[1]["choices"][0]["index"] = 1
    assert "choice" in rules(CHAT, events(out_of_range))


def test_usage_rules() -> None:
    spec = StreamSpec("chat", max_tokens=3, include_usage=True)
    chunks = stream(usage=True)
    assert rules(spec, events(chunks)) == []
    assert rules(spec, events(chunks[:-1])) == ["usage"]  # asked, never came
    assert rules(StreamSpec("chat", max_tokens=3), events(chunks)) == ["usage"]  # not asked: "usage": null is fine
    early = [*chunks[:-2], chunks[-1], chunks[-2]]
    assert "usage" in rules(spec, events(early))
    bad_total = copy.deepcopy(chunks)
    bad_total[-1]["usage"]["total_tokens"] += 1
    assert rules(spec, events(bad_total)) == ["usage"]
    missing_key = copy.deepcopy(chunks)
    del missing_key[1]["usage"]
    assert rules(spec, events(missing_key)) == ["usage"]


def test_stop_strings_never_in_the_text() -> None:
    assert rules(StreamSpec("chat", stop=("lo",)), events(stream(finish="stop"))) == ["stop"]
    assert rules(StreamSpec("chat", stop=("xyz",)), events(stream(finish="stop"))) == []


def test_logprobs_rules() -> None:
    spec = StreamSpec("chat", max_tokens=3, logprobs=2, greedy=True)
    assert rules(StreamSpec("chat", max_tokens=3), events(stream(logprobs=2))) == ["logprobs"] * 3  # not asked
    assert rules(spec, events(stream())) == ["logprobs"] * 3  # asked, missing
    assert rules(StreamSpec("chat", logprobs=3), events(stream(logprobs=2))) == ["logprobs"] * 3
    ahead = stream(logprobs=2)
    ahead[1]["choices"][0]["logprobs"] = chat_logprobs(["Hel", "lo"], 2)
    assert "logprobs" in rules(spec, events(ahead))
    not_greedy = stream(logprobs=2)
    not_greedy[1]["choices"][0]["logprobs"]["content"][0]["logprob"] = -5.0
    assert rules(spec, events(not_greedy)) == ["logprobs"]
    assert rules(StreamSpec("chat", max_tokens=3, logprobs=2), events(not_greedy)) == []
    positive = stream(logprobs=2)
    positive[2]["choices"][0]["logprobs"]["content"][0]["logprob"] = 0.5
    assert rules(StreamSpec("chat", logprobs=2), events(positive)) == ["logprobs"]


def test_legacy_text_offsets() -> None:
    spec = StreamSpec("completions", max_tokens=3, logprobs=1)
    chunks = stream(chat=False, logprobs=1)
    assert rules(spec, events(chunks)) == []
    shifted = copy.deepcopy(chunks)
    shifted[1]["choices"][0]["logprobs"]["text_offset"] = [4]
    assert rules(spec, events(shifted)) == ["logprobs"]
    unparallel = copy.deepcopy(chunks)
    unparallel[0]["choices"][0]["logprobs"]["token_logprobs"] = []
    assert rules(spec, events(unparallel)) == ["logprobs"]


def test_error_event() -> None:
    chunks: list[dict[str, Any] | str] = [*stream()[:2], {"error": {"message": "engine failed", "type": "server_error",
                                                                    "param": None, "code": None}}]
    check = check_stream(CHAT, events(chunks))
    assert check.violations == [] and check.error is not None and check.error["message"] == "engine failed"
    assert rules(CHAT, events([*chunks, stream()[2]])) == ["error"]
    assert rules(CHAT, events([*stream()[:2], {"error": "boom"}])) == ["error"]


def test_a_stream_hung_up_on_is_checked_for_what_arrived() -> None:
    chunks = stream()
    assert rules(CHAT, events(chunks[:2], done=False), complete=False) == []
    assert rules(CHAT, events([chunks[1]], done=False), complete=False) == ["role"]
    assert envelope(True, [])["choices"] == []
