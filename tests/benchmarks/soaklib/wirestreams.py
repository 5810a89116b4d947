"""Hand-built OpenAI streams for the checker tests: well-formed by default, easy to break one rule at a time."""

from __future__ import annotations

from typing import Any

import orjson

from streamserve.bench.sse import SSEEvent


def event(payload: dict[str, Any] | str) -> SSEEvent:
    """One event as the client's SSE reader would produce it."""
    data = payload if isinstance(payload, str) else orjson.dumps(payload).decode()
    return SSEEvent(data, 0.0, "", (f"data: {data}",))


def envelope(chat: bool, choices: list[dict[str, Any]], usage: Any = "absent") -> dict[str, Any]:
    chunk: dict[str, Any] = {
        "id": "chatcmpl-1" if chat else "cmpl-1",
        "object": "chat.completion.chunk" if chat else "text_completion",
        "created": 1700000000,
        "model": "m",
        "system_fingerprint": "fp_1",
        "choices": choices,
    }
    if usage != "absent":
        chunk["usage"] = usage
    return chunk


def chat_logprobs(pieces: list[str], k: int) -> dict[str, Any]:
    return {
        "content": [
            {"token": p, "logprob": -0.1, "bytes": list(p.encode()),
             "top_logprobs": [{"token": p, "logprob": -0.1 - i, "bytes": list(p.encode())} for i in range(k)]}
            for p in pieces
        ],
        "refusal": None,
    }


def legacy_logprobs(pieces: list[str], k: int, offset: int) -> dict[str, Any]:
    offsets = []
    for piece in pieces:
        offsets.append(offset)
        offset += len(piece)
    return {
        "tokens": pieces,
        "token_logprobs": [-0.1] * len(pieces),
        "top_logprobs": [{p: -0.1, **{f"alt{i}": -1.0 - i for i in range(k - 1)}} if k else {} for p in pieces],
        "text_offset": offsets,
    }


def stream(*, chat: bool = True, choices: list[list[str]] | None = None, finish: str = "length",
           usage: bool = False, logprobs: int | None = None, prompt_tokens: int = 7) -> list[dict[str, Any]]:
    """The chunks of a well-formed stream: each choice's text as a list of one-token chunks."""
    choices = choices if choices is not None else [["Hel", "lo", "!"]]
    u: Any = None if usage else "absent"
    chunks: list[dict[str, Any]] = []
    if chat:
        chunks += [envelope(True, [{"index": i, "delta": {"role": "assistant", "content": "", "refusal": None},
                                    "logprobs": None, "finish_reason": None}], u) for i in range(len(choices))]
    offsets = [0] * len(choices)
    for step in range(max(len(c) for c in choices)):
        for i, pieces in enumerate(choices):
            if step >= len(pieces):
                continue
            piece = pieces[step]
            if chat:
                lp = None if logprobs is None else chat_logprobs([piece], logprobs)
                choice = {"index": i, "delta": {"content": piece}, "logprobs": lp, "finish_reason": None}
            else:
                lp = None if logprobs is None else legacy_logprobs([piece], logprobs, offsets[i])
                choice = {"text": piece, "index": i, "logprobs": lp, "finish_reason": None}
            offsets[i] += len(piece)
            chunks.append(envelope(chat, [choice], u))
    for i in range(len(choices)):
        end = {"index": i, "delta": {}, "logprobs": None, "finish_reason": finish} if chat else \
            {"text": "", "index": i, "logprobs": None, "finish_reason": finish}
        chunks.append(envelope(chat, [end], u))
    if usage:
        tokens = sum(len(c) for c in choices)
        chunks.append(envelope(chat, [], {"prompt_tokens": prompt_tokens, "completion_tokens": tokens,
                                          "total_tokens": prompt_tokens + tokens}))
    return chunks


def events(chunks: list[dict[str, Any] | str], *, done: bool = True) -> list[SSEEvent]:
    """The chunks as events, followed by ``[DONE]``."""
    return [event(c) for c in chunks] + ([event("[DONE]")] if done else [])
