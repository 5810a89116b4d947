"""Neutral events -> the Responses API: its semantic stream events and the response object.

``ResponsesFormatter`` is the Responses counterpart of ``chunks.ChunkFormatter``: it renders the same
``TextDelta`` / ``Finish`` / ``Usage`` events as OpenAI's named events, numbered from 0 by
``sequence_number``, and ``snapshot()`` is the response object at any moment (what
``response.created`` and ``response.completed`` carry, and what a non-streamed request returns), so
the streamed item ids and text are the final ones by construction. Output items open lazily on the
first event that belongs to them: a message for text (function calls will be another item kind).
Plain dicts in OpenAI's key order, as in ``chunks``; ``api/protocol/responses.py`` documents them.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from streamserve.streaming.events import Event, Finish, LogprobEntry, TextDelta, Usage

INCOMPLETE_REASONS: Mapping[str, str] = {"length": "max_output_tokens", "content_filter": "content_filter"}
"""Finish reasons that leave a response ``incomplete``, and the ``incomplete_details.reason`` they give."""

TERMINAL_STATUSES = frozenset({"completed", "incomplete", "failed", "cancelled"})
"""Statuses after which a response never changes again."""


def new_response_id() -> str:
    """A fresh response id, ``resp_`` and 48 hex digits, as OpenAI's look."""
    return "resp_" + secrets.token_hex(24)


def new_item_id(prefix: str = "msg") -> str:
    """A fresh item id (``msg_…`` for messages)."""
    return f"{prefix}_" + secrets.token_hex(24)


@dataclass(frozen=True, slots=True)
class ResponsesMeta:
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


class ResponsesFormatter:
    """Renders one response's neutral events as Responses stream events; see the module docstring.

    Lifecycle: ``opening()`` first; then ``render()`` for every event (the ``Usage`` event ends the
    response as ``completed`` or ``incomplete``); or ``fail()`` / ``cancel()`` to end it otherwise.
    """

    def __init__(self, meta: ResponsesMeta) -> None:
        self.meta = meta
        self.status = "queued" if meta.background else "in_progress"
        self._seq = 0
        self._started = False
        self._items: list[_Message] = []
        self._open: _Message | None = None
        self._pending_logprobs: list[dict[str, Any]] = []
        self._reason: str | None = None
        self._usage: dict[str, Any] | None = None
        self._error: dict[str, Any] | None = None
        self._incomplete: dict[str, Any] | None = None
        self._completed_at: int | None = None

    @property
    def done(self) -> bool:
        """Whether the response has reached a terminal status."""
        return self.status in TERMINAL_STATUSES

    @property
    def text(self) -> str:
        """All output text so far (the SDK's ``output_text``)."""
        return "".join(item.text for item in self._items)

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
        """
        events = self._start()
        if isinstance(event, TextDelta):
            events.extend(self._text(event))
        elif isinstance(event, Finish):
            events.extend(self._finish(event))
        elif isinstance(event, Usage):
            events.append(self._end(event))
        # Moderation annotations and scores have no Responses rendering yet: nothing is sent for them.
        return events

    def fail(self, message: str, usage: Usage | None = None, *, code: str = "server_error") -> list[dict[str, Any]]:
        """End the response as ``failed`` with ``error: {code, message}``: one ``response.failed`` event."""
        self._stop_items()
        self.status = "failed"
        self._error = {"code": code, "message": message}
        if usage is not None:
            self._usage = usage_dict(usage)
        return [self._lifecycle("response.failed")]

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
        if self._open is not None:
            return self._open, []
        message = _Message(new_item_id("msg"))
        self._items.append(message)
        self._open = message
        index = self._items.index(message)
        added = self._event("response.output_item.added", output_index=index, item=message.item(content=False))
        part = self._event("response.content_part.added", item_id=message.id, output_index=index, content_index=0,
                           part={"type": "output_text", "annotations": [], "logprobs": [], "text": ""})
        return message, [added, part]

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
        if self._open is not None:
            events.extend(self._close(self._open, "incomplete" if event.reason in INCOMPLETE_REASONS else "completed"))
        return events

    def _close(self, message: _Message, status: str) -> list[dict[str, Any]]:
        """The done events of the open message: its text, its part, the item."""
        message.logprobs.extend(self._pending_logprobs)
        self._pending_logprobs = []
        message.status = status
        self._open = None
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
