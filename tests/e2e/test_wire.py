"""The SSE wire, byte by byte, against the real server (design.md, "The wire, point by point").

Raw httpx, no SDK: every event must be exactly ``data: <json>\\n\\n`` and the body must end with
``data: [DONE]``. All requests are greedy and short, run one at a time.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.e2e.ssewire import (
    MODEL,
    SSEStream,
    chat_text,
    choice_chunks,
    completion_text,
    finish_reasons,
    read_stream,
)

pytestmark = pytest.mark.e2e

FINISH_REASONS = {"stop", "length", "tool_calls", "content_filter"}
LONG_PROMPT = "Write a long story about a dragon who learns to bake bread."
SHORT_ANSWER = "Reply with three emoji only: 🎉🔥😀"


def chat_body(content: str = LONG_PROMPT, **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": content}], "temperature": 0, **extra}


def completion_body(prompt: str = "1, 2, 3, 4, 5,", **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "prompt": prompt, "temperature": 0, **extra}


def check_framing(stream: SSEStream, obj: str, id_prefix: str) -> None:
    """Points 1-3, 16, 19: status, content type, bare data events, [DONE] last, one identity per stream."""
    assert stream.status_code == 200
    assert stream.headers["content-type"].startswith("text/event-stream")
    assert stream.saw_done and stream.raw_events[-1] == b"data: [DONE]"
    assert stream.body.endswith(b"data: [DONE]\n\n")
    assert stream.body.count(b"data: [DONE]") == 1
    assert b"event:" not in stream.body
    assert stream.headers.get("x-request-id")
    assert stream.chunks
    assert {c["object"] for c in stream.chunks} == {obj}
    for key in ("id", "created", "model", "system_fingerprint"):
        assert len({repr(c.get(key, "<absent>")) for c in stream.chunks}) == 1, f"{key} changes"
    first = stream.chunks[0]
    assert first["id"].startswith(id_prefix)
    assert isinstance(first["created"], int)
    assert first["model"] == MODEL
    assert first["system_fingerprint"] is None or isinstance(first["system_fingerprint"], str)


def check_chat_choices(stream: SSEStream, n: int = 1) -> dict[int, str]:
    """Points 4-8, 11: per choice one role chunk first, content deltas, one finish chunk last."""
    indexes = {c["index"] for chunk in stream.chunks for c in chunk["choices"]}
    assert indexes == set(range(n))
    for chunk in stream.chunks:
        for element in chunk["choices"]:
            assert {"index", "delta", "finish_reason"} <= element.keys()
            assert not (element["delta"].get("content") and element["finish_reason"]), element
    for index in range(n):
        elements = choice_chunks(stream, index)
        role, *body, finish = elements
        assert role["delta"].get("role") == "assistant"
        assert role["delta"].get("content") == ""
        assert all(v is None for k, v in role["delta"].items() if k not in {"role", "content"}), role
        assert role["finish_reason"] is None
        assert role.get("logprobs") is None
        for element in body:
            assert "role" not in element["delta"] or element["delta"]["role"] is None, element
            assert element["finish_reason"] is None
            assert isinstance(element["delta"].get("content"), str) and element["delta"]["content"]
        assert finish["delta"] == {}
        assert finish["finish_reason"] in FINISH_REASONS
        assert finish.get("logprobs") is None
        assert sum(1 for e in elements if e["finish_reason"] is not None) == 1
    return finish_reasons(stream)


# --- chat: framing, choices, finish reasons -------------------------------------------------------


def test_chat_stream_framing_and_choice_shape(http: httpx.Client) -> None:
    stream = read_stream(http, "/chat/completions", chat_body(max_tokens=12))
    check_framing(stream, "chat.completion.chunk", "chatcmpl-")
    check_chat_choices(stream)
    assert all(c.get("usage") is None for c in stream.chunks)
    assert stream.headers.get("cache-control") == "no-cache"


def test_finish_reason_length_at_max_tokens(http: httpx.Client) -> None:
    stream = read_stream(http, "/chat/completions",
                         chat_body(max_tokens=3, stream_options={"include_usage": True}))
    check_framing(stream, "chat.completion.chunk", "chatcmpl-")
    assert check_chat_choices(stream) == {0: "length"}
    assert stream.chunks[-1]["usage"]["completion_tokens"] == 3
    assert chat_text(stream)


def test_finish_reason_stop_at_end_of_turn(http: httpx.Client) -> None:
    stream = read_stream(http, "/chat/completions",
                         chat_body(SHORT_ANSWER, max_tokens=200, stream_options={"include_usage": True}))
    check_framing(stream, "chat.completion.chunk", "chatcmpl-")
    assert check_chat_choices(stream) == {0: "stop"}
    assert stream.chunks[-1]["usage"]["completion_tokens"] < 200


def test_n2_streams_two_demultiplexable_choices(http: httpx.Client) -> None:
    body = chat_body(max_tokens=5, n=2, stream_options={"include_usage": True})
    stream = read_stream(http, "/chat/completions", body)
    check_framing(stream, "chat.completion.chunk", "chatcmpl-")
    assert check_chat_choices(stream, n=2) == {0: "length", 1: "length"}
    usage_chunk = stream.chunks[-1]
    assert usage_chunk["choices"] == []
    usage = usage_chunk["usage"]
    assert usage["completion_tokens"] == 2 * 5, "completion_tokens is summed over the n choices"
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    last_finish = max(i for i, c in enumerate(stream.chunks) for e in c["choices"] if e["finish_reason"])
    assert last_finish < len(stream.chunks) - 1, "the usage chunk comes after every finish chunk"
    # The prompt is counted once, not once per choice.
    single = read_stream(http, "/chat/completions", chat_body(max_tokens=5, stream_options={"include_usage": True}))
    assert single.chunks[-1]["usage"]["prompt_tokens"] == usage["prompt_tokens"]
    assert chat_text(stream, 0) and chat_text(stream, 1)


def test_n2_seeded_sampling_gives_distinct_repeatable_choices(http: httpx.Client) -> None:
    """Each of n choices samples with its own seed: n=2 gives two stories, the same two every time."""
    body = chat_body("Write a story.", max_tokens=16, n=2, temperature=1.0, seed=42)
    first = [c["message"]["content"] for c in http.post("/chat/completions", json=body).json()["choices"]]
    again = [c["message"]["content"] for c in http.post("/chat/completions", json=body).json()["choices"]]
    stream = read_stream(http, "/chat/completions", body)
    check_chat_choices(stream, n=2)
    assert first[0] != first[1], "n=2 with a seed returned twins"
    assert again == first
    assert [chat_text(stream, 0), chat_text(stream, 1)] == first


# --- include_usage -----------------------------------------------------------------------------------


@pytest.mark.parametrize("stream_options", [
    {"include_usage": True},
    {"include_usage": True, "include_obfuscation": False},
])
def test_include_usage_adds_one_last_usage_chunk(http: httpx.Client, stream_options: dict[str, Any]) -> None:
    stream = read_stream(http, "/chat/completions", chat_body(max_tokens=6, stream_options=stream_options))
    check_framing(stream, "chat.completion.chunk", "chatcmpl-")
    check_chat_choices(stream)
    *body, last = stream.chunks
    for chunk in body:
        assert "usage" in chunk and chunk["usage"] is None, chunk
    assert last["choices"] == []
    usage = last["usage"]
    assert usage["prompt_tokens"] > 0
    assert usage["completion_tokens"] == 6
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert not any("obfuscation" in chunk for chunk in stream.chunks)


def test_service_tier_accepted_and_consistent(http: httpx.Client) -> None:
    """Point 16: a request's service_tier is accepted; if echoed, the same on every chunk."""
    stream = read_stream(http, "/chat/completions", chat_body(max_tokens=4, service_tier="auto",
                                                              stream_options={"include_usage": True}))
    check_framing(stream, "chat.completion.chunk", "chatcmpl-")
    check_chat_choices(stream)
    assert len({repr(chunk.get("service_tier", "<absent>")) for chunk in stream.chunks}) == 1


@pytest.mark.parametrize("stream_options", [None, {}, {"include_usage": False}, "absent"])
def test_no_usage_chunk_without_include_usage(http: httpx.Client, stream_options: Any) -> None:
    body = chat_body(max_tokens=6)
    if stream_options != "absent":
        body["stream_options"] = stream_options
    stream = read_stream(http, "/chat/completions", body)
    check_framing(stream, "chat.completion.chunk", "chatcmpl-")
    check_chat_choices(stream)
    assert all(chunk.get("usage") is None for chunk in stream.chunks)
    assert all(chunk["choices"] for chunk in stream.chunks)


@pytest.mark.parametrize("stream", [False, "absent"])
def test_stream_options_without_stream_is_a_400(http: httpx.Client, stream: Any) -> None:
    body = chat_body(max_tokens=4, stream_options={"include_usage": True})
    if stream != "absent":
        body["stream"] = stream
    response = http.post("/chat/completions", json=body)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error.keys() == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert error["param"] == "stream_options"


# --- streamed == non-streamed --------------------------------------------------------------------------


def test_chat_streamed_text_equals_non_streamed(http: httpx.Client) -> None:
    body = chat_body(max_tokens=24)
    whole = http.post("/chat/completions", json=body).json()
    stream = read_stream(http, "/chat/completions", {**body, "stream_options": {"include_usage": True}})
    check_chat_choices(stream)
    content = whole["choices"][0]["message"]["content"]
    assert content
    assert chat_text(stream) == content
    assert finish_reasons(stream) == {0: whole["choices"][0]["finish_reason"]}
    usage = stream.chunks[-1]["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == \
        (whole["usage"]["prompt_tokens"], whole["usage"]["completion_tokens"])


def test_completions_streamed_text_equals_non_streamed(http: httpx.Client) -> None:
    body = completion_body(max_tokens=24)
    whole = http.post("/completions", json=body).json()
    assert whole["object"] == "text_completion"
    stream = read_stream(http, "/completions", body)
    check_framing(stream, "text_completion", "cmpl-")
    text = whole["choices"][0]["text"]
    assert text
    assert completion_text(stream) == text
    assert finish_reasons(stream) == {0: whole["choices"][0]["finish_reason"]}


# --- legacy completions ---------------------------------------------------------------------------------


def test_completions_stream_shape_finish_then_usage(http: httpx.Client) -> None:
    stream = read_stream(http, "/completions", completion_body(max_tokens=5, stream_options={"include_usage": True}))
    check_framing(stream, "text_completion", "cmpl-")
    *choices_chunks, usage_chunk = stream.chunks
    for chunk in choices_chunks:
        assert chunk.get("usage") is None
        assert len(chunk["choices"]) == 1
        element = chunk["choices"][0]
        assert {"text", "index", "logprobs", "finish_reason"} <= element.keys()
        assert element["index"] == 0
        assert isinstance(element["text"], str)
    finish = choices_chunks[-1]["choices"][0]
    assert finish["finish_reason"] == "length"
    assert not finish["text"], "the finish chunk carries no text"
    assert all(c["choices"][0]["finish_reason"] is None for c in choices_chunks[:-1])
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"]["completion_tokens"] == 5
    usage = usage_chunk["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert completion_text(stream)


def test_completions_stream_without_usage_has_no_usage_chunk(http: httpx.Client) -> None:
    stream = read_stream(http, "/completions", completion_body(max_tokens=5))
    check_framing(stream, "text_completion", "cmpl-")
    assert all(chunk["choices"] for chunk in stream.chunks)
    assert all(chunk.get("usage") is None for chunk in stream.chunks)
    assert finish_reasons(stream) == {0: "length"}


# --- logprobs -------------------------------------------------------------------------------------------


def _entry_bytes(entries: list[dict[str, Any]]) -> bytes:
    return b"".join(bytes(e["bytes"]) for e in entries)


@pytest.mark.parametrize("content", ["Write a haiku about the sea.", SHORT_ANSWER])
def test_chat_logprobs_travel_with_their_text(http: httpx.Client, content: str) -> None:
    """Each content chunk lists the tokens whose (last) bytes it carries; all bytes decode to the text."""
    body = chat_body(content, max_tokens=20, logprobs=True, top_logprobs=2)
    stream = read_stream(http, "/chat/completions", body)
    check_framing(stream, "chat.completion.chunk", "chatcmpl-")
    check_chat_choices(stream)
    role, *content_elements, finish = choice_chunks(stream, 0)
    assert role["logprobs"] is None and finish["logprobs"] is None
    all_entries: list[dict[str, Any]] = []
    sent = b""
    for element in content_elements:
        entries = element["logprobs"]["content"]
        assert entries, f"a content chunk without logprobs: {element}"
        for entry in entries:
            assert {"token", "logprob", "bytes", "top_logprobs"} <= entry.keys()
            assert entry["logprob"] <= 0.0
            assert len(entry["top_logprobs"]) == 2
            # Greedy: the chosen token is the most likely one.
            assert entry["logprob"] == pytest.approx(max(t["logprob"] for t in entry["top_logprobs"]), abs=1e-4)
            assert bytes(entry["top_logprobs"][0]["bytes"]) == bytes(entry["bytes"])
        all_entries.extend(entries)
        sent += element["delta"]["content"].encode("utf-8")
        listed = _entry_bytes(all_entries)
        # Every listed token's bytes have been sent, and what was sent beyond them is the start of
        # a token still in flight (a character split across tokens), never a whole unlisted token.
        assert sent.startswith(listed), (sent, listed)
        assert len(sent) - len(listed) < 4, (sent, listed)
    text = chat_text(stream)
    assert _entry_bytes(all_entries).decode("utf-8", "replace") == text
    assert [e["token"] for e in all_entries] and sent == text.encode("utf-8")
    # The same entries as the non-streamed response.
    whole = http.post("/chat/completions", json=body).json()["choices"][0]
    assert whole["message"]["content"] == text
    assert [(e["token"], e["bytes"]) for e in whole["logprobs"]["content"]] == \
        [(e["token"], e["bytes"]) for e in all_entries]


def test_chat_logprobs_per_chunk_bytes_equal_content(http: httpx.Client) -> None:
    """ASCII text: each content chunk's logprobs bytes are exactly that chunk's content bytes."""
    stream = read_stream(http, "/chat/completions",
                         chat_body("Write a haiku about the sea.", max_tokens=16, logprobs=True, top_logprobs=2))
    _, *content_elements, _ = choice_chunks(stream, 0)
    assert content_elements
    for element in content_elements:
        content = element["delta"]["content"]
        assert _entry_bytes(element["logprobs"]["content"]) == content.encode("utf-8"), element


def test_completions_logprobs_shape(http: httpx.Client) -> None:
    body = completion_body(max_tokens=8, logprobs=2)
    stream = read_stream(http, "/completions", body)
    check_framing(stream, "text_completion", "cmpl-")
    *content_chunks, finish_chunk = stream.chunks
    assert finish_chunk["choices"][0]["finish_reason"] == "length"
    tokens: list[str] = []
    offsets: list[int] = []
    for chunk in content_chunks:
        logprobs = chunk["choices"][0]["logprobs"]
        assert logprobs.keys() >= {"tokens", "token_logprobs", "top_logprobs", "text_offset"}
        count = len(logprobs["tokens"])
        assert count >= 1
        assert len(logprobs["token_logprobs"]) == len(logprobs["top_logprobs"]) == len(logprobs["text_offset"]) == count
        for lp, top in zip(logprobs["token_logprobs"], logprobs["top_logprobs"], strict=True):
            assert lp <= 0.0
            assert 1 <= len(top) <= 2
            assert lp == pytest.approx(max(top.values()), abs=1e-4)  # greedy
        assert "".join(logprobs["tokens"]) == chunk["choices"][0]["text"]
        tokens += logprobs["tokens"]
        offsets += logprobs["text_offset"]
    text = completion_text(stream)
    assert "".join(tokens) == text
    assert len(tokens) == 8
    assert offsets == [len("".join(tokens[:i])) for i in range(len(tokens))]
    whole = http.post("/completions", json=body).json()["choices"][0]
    assert whole["text"] == text
    assert whole["logprobs"]["tokens"] == tokens
    assert whole["logprobs"]["text_offset"] == offsets
