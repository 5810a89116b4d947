"""Neutral events -> the Responses API: its semantic stream events and the response object.

``ResponseFormatter`` is the Responses counterpart of ``chunks.ChunkFormatter``: it renders the same
``TextDelta`` / ``Finish`` / ``Usage`` events as OpenAI's named events, numbered from 0 by
``sequence_number``, and ``snapshot()`` is the response object at any moment (what
``response.created`` and ``response.completed`` carry, and what a non-streamed request returns), so
the streamed item ids and text are the final ones by construction. Output items open lazily on the
first event that belongs to them: a message for text, a ``function_call`` item for each tool call
(its arguments streamed as ``response.function_call_arguments.delta`` / ``.done``). A request's
moderation scores become the response's ``moderation`` field. Plain dicts in OpenAI's key order, as in
``chunks``; ``api/protocol/responses.py`` documents them.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from streamserve.engine import EngineError, EngineStoppedError
from streamserve.formats.moderation import result_dict
from streamserve.generation.events import (
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

INCOMPLETE_REASONS: Mapping[str, str] = {"length": "max_output_tokens", "content_filter": "content_filter"}
"""Finish reasons that leave a response ``incomplete``, and the ``incomplete_details.reason`` they give."""

TERMINAL_STATUSES = frozenset({"completed", "incomplete", "failed", "cancelled"})
"""Statuses after which a response never changes again."""


SHUTDOWN_MESSAGE = "The server shut down before this response finished."
ENGINE_FAILURE_MESSAGE = "The server had an error while generating this response."


def new_response_id() -> str:
    """A fresh response id, ``resp_`` and 48 hex digits, as OpenAI's look."""
    return "resp_" + secrets.token_hex(24)


def new_item_id(prefix: str = "msg") -> str:
    """A fresh item id (``msg_…`` for messages, ``fc_…`` for function calls)."""
    return f"{prefix}_" + secrets.token_hex(24)


@dataclass(frozen=True, slots=True)
class ResponseMeta:
    """What every snapshot of one response shares.

    ``fields`` are the request-derived fields every response object echoes (``instructions``,
    ``max_output_tokens``, ``temperature``, ``metadata``…), in OpenAI's order. ``logprobs`` says the
    request asked for ``message.output_text.logprobs``.
    """

    id: str
    created_at: int
    model: str
    background: bool
    fields: Mapping[str, Any]
    logprobs: bool = False


class _Message:
    """The assistant message being written: its id, its text so far and its token logprobs."""

    def __init__(self, item_id: str) -> None:
        self.id = item_id
        self.pieces: list[str] = []
        self.logprobs: list[dict[str, Any]] = []
        self.status = "in_progress"

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    def part(self) -> dict[str, Any]:
        return {"type": "output_text", "annotations": [], "logprobs": list(self.logprobs), "text": self.text}

    def item(self, *, content: bool = True) -> dict[str, Any]:
        return {"id": self.id, "type": "message", "status": self.status,
                "content": [self.part()] if content else [], "role": "assistant"}


class _Call:
    """A function call being written: its item id, OpenAI's ``call_id``, the name and the arguments so far."""

    def __init__(self, item_id: str, call_id: str, name: str) -> None:
        self.id = item_id
        self.call_id = call_id
        self.name = name
        self.pieces: list[str] = []
        self.status = "in_progress"

    @property
    def arguments(self) -> str:
        return "".join(self.pieces)

    def item(self, *, content: bool = True) -> dict[str, Any]:
        return {"id": self.id, "type": "function_call", "status": self.status,
                "arguments": self.arguments if content else "", "call_id": self.call_id, "name": self.name}


class ResponseFormatter:
    """Renders one response's neutral events as Responses stream events; see the module docstring.

    Lifecycle: ``opening()`` first; then ``render()`` for every event (the ``Usage`` event ends the
    response as ``completed`` or ``incomplete``); or ``fail()`` / ``cancel()`` to end it otherwise.
    """

    def __init__(self, meta: ResponseMeta) -> None:
        self.meta = meta
        self.status = "queued" if meta.background else "in_progress"
        self._seq = 0
        self._started = False
        self._items: list[_Message | _Call] = []
        self._open: _Message | _Call | None = None
        self._pending_logprobs: list[dict[str, Any]] = []
        self._reason: str | None = None
        self._usage: dict[str, Any] | None = None
        self._error: dict[str, Any] | None = None
        self._incomplete: dict[str, Any] | None = None
        self._completed_at: int | None = None
        self._moderation: dict[str, Any] | None = None

    @property
    def done(self) -> bool:
        """Whether the response has reached a terminal status."""
        return self.status in TERMINAL_STATUSES

    @property
    def text(self) -> str:
        """All output text so far (the SDK's ``output_text``)."""
        return "".join(item.text for item in self._items if isinstance(item, _Message))

    def opening(self) -> list[dict[str, Any]]:
        """``response.created``, then ``response.queued`` (background) or ``response.in_progress``."""
        events = [self._lifecycle("response.created")]
        if self.meta.background:
            events.append(self._lifecycle("response.queued"))
        else:
            events.extend(self._start())
        return events

    def render(self, event: Event) -> list[dict[str, Any]]:
        """The stream events for one neutral event (a background response starts on its first).

        A ``content_filter`` finish ends the response ``incomplete`` with that reason, like ``length``.
        Async moderation's annotations have no Responses event (OpenAI has none): nothing is sent for them.
        """
        events = self._start()
        if isinstance(event, TextDelta):
            events.extend(self._text(event))
        elif isinstance(event, ToolCallStart):
            events.extend(self._call(event))
        elif isinstance(event, ToolCallDelta):
            events.extend(self._arguments(event))
        elif isinstance(event, ToolCallEnd):
            events.extend(self._close_open("completed"))
        elif isinstance(event, Finish):
            events.extend(self._finish(event))
        elif isinstance(event, ModerationScores):
            self._moderation = moderation_dict(event)
        elif isinstance(event, Usage):
            events.append(self._end(event))
        return events

    def fail(self, message: str, usage: Usage | None = None, *, code: str = "server_error") -> list[dict[str, Any]]:
        """End the response as ``failed`` with ``error: {code, message}``: one ``response.failed`` event."""
        self._stop_items()
        self.status = "failed"
        self._error = {"code": code, "message": message}
        if usage is not None:
            self._usage = usage_dict(usage)
        return [self._lifecycle("response.failed")]

    def failure(self, error: EngineError | ModerationError, usage: Usage | None = None) -> list[dict[str, Any]]:
        """The events that end a response whose generation failed: ``response.failed`` with a message in words."""
        if isinstance(error, ModerationError):
            return self.fail(f"moderation failed: {error}", usage, code="moderation_failed")
        return self.fail(SHUTDOWN_MESSAGE if isinstance(error, EngineStoppedError) else ENGINE_FAILURE_MESSAGE, usage)

    def cancel(self, usage: Usage | None = None) -> None:
        """End the response as ``cancelled`` (no stream event exists for it); open items become incomplete."""
        self._stop_items()
        self.status = "cancelled"
        if usage is not None:
            self._usage = usage_dict(usage)

    def snapshot(self) -> dict[str, Any]:
        """The response object now, with every field OpenAI sends (nulls included)."""
        meta = self.meta
        output = [item.item() for item in self._items]
        moderation = {} if self._moderation is None else {"moderation": self._moderation}
        return {
            "id": meta.id,
            "object": "response",
            "created_at": meta.created_at,
            "status": self.status,
            "background": meta.background,
            "completed_at": self._completed_at,
            "error": self._error,
            "incomplete_details": self._incomplete,
            **meta.fields,
            "model": meta.model,
            "output": output,
            "usage": self._usage,
            **moderation,
        }

    # Items

    def _start(self) -> list[dict[str, Any]]:
        if self._started:
            return []
        self._started = True
        self.status = "in_progress"
        return [self._lifecycle("response.in_progress")]

    def _message(self) -> tuple[_Message, list[dict[str, Any]]]:
        """The open message item, opening it (item added, content part added) if there is none."""
        if isinstance(self._open, _Message):
            return self._open, []
        events = self._close_open("completed")
        message = _Message(new_item_id("msg"))
        self._items.append(message)
        self._open = message
        index = len(self._items) - 1
        events.append(self._event("response.output_item.added", output_index=index,
                                  item=message.item(content=False)))
        events.append(self._event("response.content_part.added", item_id=message.id, output_index=index,
                                  content_index=0,
                                  part={"type": "output_text", "annotations": [], "logprobs": [], "text": ""}))
        return message, events

    def _call(self, event: ToolCallStart) -> list[dict[str, Any]]:
        """A call opens its own item (after closing the message before it, if any)."""
        events = self._close_open("completed")
        call = _Call(new_item_id("fc"), event.id, event.name)
        self._items.append(call)
        self._open = call
        events.append(self._event("response.output_item.added", output_index=len(self._items) - 1,
                                  item=call.item(content=False)))
        return events

    def _arguments(self, event: ToolCallDelta) -> list[dict[str, Any]]:
        call = self._open
        assert isinstance(call, _Call), "arguments arrive inside a call"
        call.pieces.append(event.arguments)
        return [self._event("response.function_call_arguments.delta", item_id=call.id,
                            output_index=self._items.index(call), delta=event.arguments)]

    def _text(self, event: TextDelta) -> list[dict[str, Any]]:
        message, events = self._message()
        if event.logprobs:
            self._pending_logprobs.extend(logprob_dicts(event.logprobs))
        if not event.text:
            return events
        message.pieces.append(event.text)
        logprobs, self._pending_logprobs = self._pending_logprobs, []
        message.logprobs.extend(logprobs)
        events.append(self._event("response.output_text.delta", item_id=message.id,
                                  output_index=self._items.index(message), content_index=0, delta=event.text,
                                  logprobs=logprobs))
        return events

    def _finish(self, event: Finish) -> list[dict[str, Any]]:
        """Close the open item; an answer with no item at all still gets its (empty) message."""
        events = [] if self._items else self._message()[1]
        self._reason = event.reason
        events.extend(self._close_open("incomplete" if event.reason in INCOMPLETE_REASONS else "completed"))
        return events

    def _close_open(self, status: str) -> list[dict[str, Any]]:
        """The done events of the open item, if any: a message's or a call's."""
        item, self._open = self._open, None
        if isinstance(item, _Message):
            return self._close(item, status)
        if item is None:
            return []
        item.status = status
        index = self._items.index(item)
        return [
            self._event("response.function_call_arguments.done", item_id=item.id, output_index=index,
                        arguments=item.arguments, name=item.name),
            self._event("response.output_item.done", output_index=index, item=item.item()),
        ]

    def _close(self, message: _Message, status: str) -> list[dict[str, Any]]:
        """The done events of a message: its text, its part, the item."""
        message.logprobs.extend(self._pending_logprobs)
        self._pending_logprobs = []
        message.status = status
        index = self._items.index(message)
        return [
            self._event("response.output_text.done", item_id=message.id, output_index=index, content_index=0,
                        text=message.text, logprobs=list(message.logprobs)),
            self._event("response.content_part.done", item_id=message.id, output_index=index, content_index=0,
                        part=message.part()),
            self._event("response.output_item.done", output_index=index, item=message.item()),
        ]

    def _end(self, usage: Usage) -> dict[str, Any]:
        self._usage = usage_dict(usage)
        reason = INCOMPLETE_REASONS.get(self._reason or "")
        if reason is not None:
            self.status = "incomplete"
            self._incomplete = {"reason": reason}
            return self._lifecycle("response.incomplete")
        self.status = "completed"
        self._completed_at = int(time.time())
        return self._lifecycle("response.completed")

    def _stop_items(self) -> None:
        if self._open is not None:
            self._open.status = "incomplete"
            self._open = None

    # Events

    def _lifecycle(self, kind: str) -> dict[str, Any]:
        return self._event(kind, response=self.snapshot())

    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        event = {"type": kind, "sequence_number": self._seq, **fields}
        self._seq += 1
        return event


def usage_dict(usage: Usage) -> dict[str, Any]:
    """The Responses ``usage`` object; ``cached_tokens`` is the prompt-cache hit."""
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens, "cache_write_tokens": 0},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.total_tokens,
    }


def logprob_dicts(entries: Sequence[LogprobEntry]) -> list[dict[str, Any]]:
    """Token logprobs as the Responses API lists them: ``{token, logprob, bytes, top_logprobs}``."""
    return [
        {
            "token": entry.token,
            "logprob": entry.logprob,
            "bytes": list(entry.bytes),
            "top_logprobs": [{"token": t.token, "logprob": t.logprob, "bytes": list(t.bytes)} for t in entry.top],
        }
        for entry in entries
    ]


def moderation_dict(scores: ModerationScores) -> dict[str, Any]:
    """The response's ``moderation``: one result for the input (the checked prompt) and one for the output."""

    def one(results: Sequence[ModerationResult]) -> dict[str, Any]:
        result = results[0] if results else ModerationResult()
        return {"type": "moderation_result", "model": scores.model, **result_dict(result)}

    return {"input": one(scores.input), "output": one(scores.output)}
