"""Neutral events → OpenAI response objects: the one place chat and legacy completions differ in shape.

``ChunkFormatter`` renders the streamed chunks and ``CompletionBuilder`` the non-streamed response,
both as plain dicts in OpenAI's key order with explicit ``None`` where OpenAI sends null (as
llama.cpp's one result type renders itself per format). ``sse.encode`` serializes them with orjson.
No pydantic here: ``render`` runs once per token. ``api/protocol.py`` documents the same shapes.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from streamserve.engine import EngineError
from streamserve.formats.moderation import content_filter_results, result_dict
from streamserve.generation.events import (
    Annotation,
    Event,
    Finish,
    LogprobEntry,
    ModerationScores,
    TextDelta,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    Usage,
)
from streamserve.moderation import ModerationError, ModerationResult
from streamserve.prompting.structured import Opening


class Shape(enum.Enum):
    """The two wire formats: ``/v1/chat/completions`` and legacy ``/v1/completions``."""

    CHAT = "chat"
    COMPLETION = "completion"


@dataclass(frozen=True, slots=True)
class CompletionMeta:
    """What every chunk of one response shares; ``n`` is the number of choices.

    ``opening`` is how each chat choice opens: a text turn, a tool turn (``content: null``), or
    ``deferred``: the choice's first event decides (``tool_choice: auto``).
    """

    shape: Shape
    id: str
    created: int
    model: str
    n: int
    include_usage: bool
    system_fingerprint: str | None
    opening: Opening = "text"


_ID_PREFIX = {Shape.CHAT: "chatcmpl-", Shape.COMPLETION: "cmpl-"}
_CHUNK_OBJECT = {Shape.CHAT: "chat.completion.chunk", Shape.COMPLETION: "text_completion"}
_RESPONSE_OBJECT = {Shape.CHAT: "chat.completion", Shape.COMPLETION: "text_completion"}


def error_body(message: str, *, type: str = "server_error", code: str | None = None,
               param: str | None = None) -> dict[str, Any]:
    """OpenAI's error envelope, as a stream's error event carries it."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def new_completion_id(shape: Shape) -> str:
    """A fresh response id: ``chatcmpl-<hex>`` for chat, ``cmpl-<hex>`` for completions."""
    return _ID_PREFIX[shape] + uuid.uuid4().hex


class ChunkFormatter:
    """Renders one streamed response's events as chunk dicts, in the chat or the completion shape.

    With ``include_usage`` every chunk carries ``"usage": None`` and the ``Usage`` event becomes a
    last chunk with ``choices: []``; without it, chunks have no ``usage`` key and ``Usage`` renders
    nothing. Each tool call opens once with its id, type and name (``arguments: ""``), then only
    argument fragments follow, as OpenAI streams them.
    """

    def __init__(self, meta: CompletionMeta) -> None:
        self._meta = meta
        self._chat = meta.shape is Shape.CHAT
        self._object = _CHUNK_OBJECT[meta.shape]
        self._unopened = set(range(meta.n)) if self._chat and meta.opening == "deferred" else set()

    def opening(self) -> list[dict[str, Any]]:
        """Chunks sent before any text: chat's role chunk for each choice (unless deferred); none for completions."""
        if not self._chat or self._meta.opening == "deferred":
            return []
        return [self._role_chunk(index, tool=self._meta.opening == "tool_call") for index in range(self._meta.n)]

    def render(self, event: Event) -> list[dict[str, Any]]:
        """The chunks for one event (a deferred role chunk first, when it opens its choice)."""
        if (isinstance(event, TextDelta) and not event.text and not event.logprobs) or isinstance(event, ToolCallEnd):
            return []
        if isinstance(event, Usage):
            return self._usage_chunk(event)
        if isinstance(event, ModerationScores):
            chunk = self._chunk(None)
            chunk["moderation"] = moderation_dict(event)
            return [chunk]
        chunks = []
        if event.index in self._unopened:
            self._unopened.discard(event.index)
            chunks.append(self._role_chunk(event.index, tool=isinstance(event, ToolCallStart)))
        if isinstance(event, TextDelta):
            chunks.append(self._chunk(self._content_choice(event)))
        elif isinstance(event, Finish):
            chunks.append(self._chunk(self._finish_choice(event)))
        elif isinstance(event, Annotation):
            chunks.append(self._chunk(self._annotation_choice(event)))
        else:
            chunks.append(self._chunk(_tool_call_choice(event)))
        return chunks

    def failure(self, error: EngineError | ModerationError, usage: Usage | None = None) -> list[dict[str, Any]]:
        """An error after the stream began: one event in OpenAI's error envelope, with no ``choices``."""
        if isinstance(error, ModerationError):
            return [error_body(f"moderation failed: {error}", code="moderation_failed")]
        return [error_body(str(error))]

    def _role_chunk(self, index: int, *, tool: bool) -> dict[str, Any]:
        """A chat choice's first chunk: ``content: ""`` for text, ``content: null`` for a tool turn."""
        delta: dict[str, Any] = {"role": "assistant", "content": None} if tool else {
            "role": "assistant", "content": "", "refusal": None}
        return self._chunk({"index": index, "delta": delta, "logprobs": None, "finish_reason": None})

    def _usage_chunk(self, event: Usage) -> list[dict[str, Any]]:
        if not self._meta.include_usage:
            return []
        chunk = self._chunk(None)
        chunk["usage"] = _usage_dict(event)
        return [chunk]

    def _chunk(self, choice: dict[str, Any] | None) -> dict[str, Any]:
        """The envelope shared by every chunk; ``None`` gives the usage chunk's empty ``choices``."""
        meta = self._meta
        chunk: dict[str, Any] = {
            "id": meta.id,
            "object": self._object,
            "created": meta.created,
            "model": meta.model,
            "system_fingerprint": meta.system_fingerprint,
            "choices": [] if choice is None else [choice],
        }
        if meta.include_usage:
            chunk["usage"] = None
        return chunk

    def _content_choice(self, event: TextDelta) -> dict[str, Any]:
        if self._chat:
            return {
                "index": event.index,
                "delta": {"content": event.text},
                "logprobs": None if event.logprobs is None else _chat_logprobs(event.logprobs),
                "finish_reason": None,
            }
        return {
            "text": event.text,
            "index": event.index,
            "logprobs": None if event.logprobs is None else _completion_logprobs(event.logprobs),
            "finish_reason": None,
        }

    def _finish_choice(self, event: Finish) -> dict[str, Any]:
        if self._chat:
            return {"index": event.index, "delta": {}, "logprobs": None, "finish_reason": event.reason}
        return {"text": "", "index": event.index, "logprobs": None, "finish_reason": event.reason}

    def _annotation_choice(self, event: Annotation) -> dict[str, Any]:
        """Azure's annotation: the choice with no new text, what was checked and the verdict."""
        choice = self._finish_choice(Finish(event.index, "stop"))
        choice["finish_reason"] = None
        choice["content_filter_results"] = content_filter_results(event.result)
        choice["content_filter_offsets"] = {
            "check_offset": event.checked, "start_offset": event.start, "end_offset": event.end,
        }
        return choice


def _tool_call_choice(event: ToolCallStart | ToolCallDelta) -> dict[str, Any]:
    """A chat choice carrying one tool call entry: the call's opening, or a fragment of its arguments."""
    if isinstance(event, ToolCallStart):
        call: dict[str, Any] = {"index": event.call, "id": event.id, "type": "function",
                                "function": {"name": event.name, "arguments": ""}}
    else:
        call = {"index": event.call, "function": {"arguments": event.arguments}}
    return {"index": event.index, "delta": {"tool_calls": [call]}, "logprobs": None, "finish_reason": None}


class CompletionBuilder:
    """Collects one non-streamed response's events and builds the ``chat.completion`` / ``text_completion``.

    Text and logprobs are joined per choice from the same events the stream would send, so the
    non-streamed response equals the joined stream.
    """

    def __init__(self, meta: CompletionMeta) -> None:
        self._meta = meta
        self._text: dict[int, list[str]] = {index: [] for index in range(meta.n)}
        # A choice's list exists once any of its deltas carried logprobs (they were requested).
        self._logprobs: dict[int, list[LogprobEntry]] = {}
        self._finish: dict[int, str] = {}
        self._calls: dict[int, list[dict[str, Any]]] = {}
        self._usage: Usage | None = None
        self._moderation: ModerationScores | None = None

    def add(self, event: Event) -> None:
        """Record one event."""
        if isinstance(event, TextDelta):
            self._text.setdefault(event.index, []).append(event.text)
            if event.logprobs is not None:
                self._logprobs.setdefault(event.index, []).extend(event.logprobs)
        elif isinstance(event, Finish):
            self._finish[event.index] = event.reason
        elif isinstance(event, ModerationScores):
            self._moderation = event
        elif isinstance(event, ToolCallStart):
            call = {"id": event.id, "type": "function", "function": {"name": event.name, "arguments": ""}}
            self._calls.setdefault(event.index, []).append(call)
        elif isinstance(event, ToolCallDelta):
            self._calls[event.index][event.call]["function"]["arguments"] += event.arguments
        elif isinstance(event, Usage):
            self._usage = event

    def build(self) -> dict[str, Any]:
        """The response dict, choices sorted by index; call after every choice finished and usage came."""
        meta = self._meta
        assert self._usage is not None, "build() before the Usage event"
        assert self._finish.keys() >= self._text.keys(), "build() before every choice finished"
        response = {
            "id": meta.id,
            "object": _RESPONSE_OBJECT[meta.shape],
            "created": meta.created,
            "model": meta.model,
            "system_fingerprint": meta.system_fingerprint,
            "choices": [self._choice(index) for index in sorted(self._text)],
            "usage": _usage_dict(self._usage),
        }
        if self._moderation is not None:
            response["moderation"] = moderation_dict(self._moderation)
        return response

    def _choice(self, index: int) -> dict[str, Any]:
        text = "".join(self._text[index])
        entries = self._logprobs.get(index)
        if self._meta.shape is Shape.CHAT:
            calls = self._calls.get(index)
            message: dict[str, Any] = {"role": "assistant", "content": None if calls and not text else text,
                                       "refusal": None}
            if calls:
                message["tool_calls"] = calls
            return {
                "index": index,
                "message": message,
                "logprobs": None if entries is None else _chat_logprobs(entries),
                "finish_reason": self._finish[index],
            }
        return {
            "text": text,
            "index": index,
            "logprobs": None if entries is None else _completion_logprobs(entries),
            "finish_reason": self._finish[index],
        }


def _usage_dict(usage: Usage) -> dict[str, Any]:
    """``{prompt_tokens, completion_tokens, total_tokens, prompt_tokens_details: {cached_tokens}}``, and
    ``completion_tokens_details`` with the prediction's accepted and rejected tokens if it had one."""
    result: dict[str, Any] = {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
    }
    if usage.accepted_prediction_tokens is not None:
        result["completion_tokens_details"] = {"accepted_prediction_tokens": usage.accepted_prediction_tokens,
                                               "rejected_prediction_tokens": usage.rejected_prediction_tokens}
    return result


def _chat_logprobs(entries: Sequence[LogprobEntry]) -> dict[str, Any]:
    """Chat logprobs: ``{"content": [{token, logprob, bytes, top_logprobs: [...]}], "refusal": None}``."""
    return {
        "content": [
            {
                "token": entry.token,
                "logprob": entry.logprob,
                "bytes": list(entry.bytes),
                "top_logprobs": [
                    {"token": top.token, "logprob": top.logprob, "bytes": list(top.bytes)}
                    for top in entry.top
                ],
            }
            for entry in entries
        ],
        "refusal": None,
    }


def _completion_logprobs(entries: Sequence[LogprobEntry]) -> dict[str, Any]:
    """Legacy logprobs: parallel lists of tokens, their logprobs, top alternatives and text offsets."""
    return {
        "tokens": [entry.token for entry in entries],
        "token_logprobs": [entry.logprob for entry in entries],
        "top_logprobs": [{top.token: top.logprob for top in entry.top} for entry in entries],
        "text_offset": [entry.offset for entry in entries],
    }


def moderation_dict(scores: ModerationScores) -> dict[str, Any]:
    """OpenAI's ``moderation`` object of a moderated completion: ``{"input": R, "output": R}``."""

    def results(items: Sequence[ModerationResult]) -> dict[str, Any]:
        return {
            "type": "moderation_results",
            "model": scores.model,
            "results": [{"type": "moderation_result", "model": scores.model, **result_dict(r)} for r in items],
        }

    return {"input": results(scores.input), "output": results(scores.output)}
