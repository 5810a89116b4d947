"""Neutral events -> Anthropic's Messages API: its stream events and the whole message.

``MessageFormatter`` renders a stream as Anthropic sends it: ``message_start`` (empty content, the
prompt's usage), then per content block ``content_block_start`` / ``content_block_delta`` /
``content_block_stop`` (text as ``text_delta``; a tool call as a ``tool_use`` block opening with an
empty ``input`` and its arguments as ``input_json_delta`` fragments, exactly as the model writes them),
then ``message_delta`` (``stop_reason``, ``stop_sequence``, cumulative usage) and ``message_stop``,
after which nothing is sent. A failure after the stream began is one ``error`` event, and nothing after.
``MessageBuilder`` builds the non-streamed message from the same events. Plain dicts in Anthropic's key
order; ``api/anthropic/protocol.py`` documents the request side.

Usage follows Anthropic: ``input_tokens`` excludes ``cache_read_input_tokens`` (the prompt cache's
reused prefix), so the two add up to the prompt's size, which is what ``count_tokens`` reports.
"""

from __future__ import annotations

import json
import secrets
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from streamserve.engine import EngineError, EngineStoppedError
from streamserve.generation.events import (
    Event,
    Finish,
    TextDelta,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    Usage,
)
from streamserve.moderation import ModerationError

PING: Mapping[str, Any] = MappingProxyType({"type": "ping"})
"""The keep-alive event Anthropic's streams may carry anywhere; clients skip it."""

STOP_REASONS: Mapping[str, str] = MappingProxyType(
    {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "content_filter": "refusal"})
"""Neutral finish reasons -> ``stop_reason`` (a request's own stop sequence gives ``stop_sequence``)."""

_ALPHABET = string.ascii_letters + string.digits


def new_message_id() -> str:
    """A fresh message id, ``msg_`` and 24 letters or digits, as Anthropic's look."""
    return "msg_" + "".join(secrets.choice(_ALPHABET) for _ in range(24))


def tool_use_id(call_id: str) -> str:
    """The ``toolu_`` id of a tool call the parser named ``call_…`` (the same random part)."""
    return "toolu_" + call_id.removeprefix("call_")


def error_event(kind: str, message: str) -> dict[str, Any]:
    """Anthropic's error object, as the body of an HTTP error and as a stream's ``error`` event."""
    return {"type": "error", "error": {"type": kind, "message": message}}


@dataclass(frozen=True, slots=True)
class MessageMeta:
    """What one message's events share: its id, the model name the client asked for, and its own stop sequences.

    ``stop_sequences`` tell a request's stop (``stop_reason: "stop_sequence"``) from the template's (an end
    of turn).
    """

    id: str
    model: str
    stop_sequences: tuple[str, ...] = ()


def usage_dict(usage: Usage) -> dict[str, Any]:
    """Anthropic's ``usage``: uncached input, cache reads (the reused prompt prefix), output."""
    return {
        "input_tokens": usage.prompt_tokens - usage.cached_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": usage.cached_tokens,
        "output_tokens": usage.completion_tokens,
        "service_tier": "standard",
    }


def _stop(meta: MessageMeta, finish: Finish | None) -> tuple[str | None, str | None]:
    """``stop_reason`` and ``stop_sequence`` for how the message ended."""
    if finish is None:
        return None, None
    if finish.reason == "stop" and finish.stop is not None and finish.stop in meta.stop_sequences:
        return "stop_sequence", finish.stop
    return STOP_REASONS[finish.reason], None


def message_dict(meta: MessageMeta, content: list[dict[str, Any]], finish: Finish | None,
                 usage: Usage) -> dict[str, Any]:
    """The message object: what ``message_start`` carries (no content, no stop yet) and a whole response."""
    reason, sequence = _stop(meta, finish)
    return {"id": meta.id, "type": "message", "role": "assistant", "model": meta.model, "content": content,
            "stop_reason": reason, "stop_sequence": sequence, "usage": usage_dict(usage)}


class MessageFormatter:
    """Renders one message's neutral events as Anthropic stream events; see the module docstring.

    ``prompt_usage`` gives the usage once the prompt is read (the driver waits for that before
    ``opening()``), so ``message_start`` reports the prompt cache's part exactly.
    """

    def __init__(self, meta: MessageMeta, prompt_usage: Callable[[], Usage]) -> None:
        self.meta = meta
        self._prompt_usage = prompt_usage
        self._blocks = 0
        self._open: str | None = None  # the type of the open content block
        self._finish: Finish | None = None
        self._ended = False

    def opening(self) -> list[dict[str, Any]]:
        """``message_start``: the message with no content yet and the prompt's usage."""
        usage = self._prompt_usage()
        start = Usage(usage.prompt_tokens, 0, usage.cached_tokens)
        return [{"type": "message_start", "message": message_dict(self.meta, [], None, start)}]

    def render(self, event: Event) -> list[dict[str, Any]]:
        """The stream events for one neutral event; none once ``message_stop`` went out."""
        if self._ended:
            return []
        if isinstance(event, TextDelta):
            return self._text(event.text) if event.text else []
        if isinstance(event, ToolCallStart):
            block = {"type": "tool_use", "id": tool_use_id(event.id), "name": event.name, "input": {}}
            return self._start("tool_use", block)
        if isinstance(event, ToolCallDelta):
            return [self._delta({"type": "input_json_delta", "partial_json": event.arguments})]
        if isinstance(event, ToolCallEnd):
            return self._close()
        if isinstance(event, Finish):
            self._finish = event
            return self._close()
        if isinstance(event, Usage):
            return self._end(event)
        return []  # moderation annotations and scores have no Anthropic event

    def failure(self, error: EngineError | ModerationError, usage: Usage | None = None) -> list[dict[str, Any]]:
        """One ``error`` event: ``overloaded_error`` when the server is shutting down, else ``api_error``."""
        self._ended = True
        if isinstance(error, ModerationError):
            return [error_event("api_error", f"moderation failed: {error}")]
        if isinstance(error, EngineStoppedError):
            return [error_event("overloaded_error", str(error))]
        return [error_event("api_error", "The server had an error while generating this message.")]

    def _text(self, text: str) -> list[dict[str, Any]]:
        events = [] if self._open == "text" else self._start("text", {"type": "text", "text": ""})
        events.append(self._delta({"type": "text_delta", "text": text}))
        return events

    def _start(self, kind: str, block: dict[str, Any]) -> list[dict[str, Any]]:
        events = self._close()
        events.append({"type": "content_block_start", "index": self._blocks, "content_block": block})
        self._open = kind
        return events

    def _delta(self, delta: dict[str, Any]) -> dict[str, Any]:
        return {"type": "content_block_delta", "index": self._blocks, "delta": delta}

    def _close(self) -> list[dict[str, Any]]:
        if self._open is None:
            return []
        self._open = None
        self._blocks += 1
        return [{"type": "content_block_stop", "index": self._blocks - 1}]

    def _end(self, usage: Usage) -> list[dict[str, Any]]:
        events = self._close()
        reason, sequence = _stop(self.meta, self._finish)
        self._ended = True
        return [*events,
                {"type": "message_delta", "delta": {"stop_reason": reason, "stop_sequence": sequence},
                 "usage": usage_dict(usage)},
                {"type": "message_stop"}]


class MessageBuilder:
    """Collects one non-streamed message's events and builds the message object.

    Text blocks join their deltas; a ``tool_use`` block's ``input`` is its arguments parsed (``{}`` for
    a call cut short by ``max_tokens``, whose arguments are not yet JSON).
    """

    def __init__(self, meta: MessageMeta) -> None:
        self.meta = meta
        self._content: list[dict[str, Any]] = []
        self._arguments: list[str] = []
        self._finish: Finish | None = None
        self._usage: Usage | None = None

    def add(self, event: Event) -> None:
        """Record one event."""
        if isinstance(event, TextDelta) and event.text:
            if self._content and self._content[-1]["type"] == "text":
                self._content[-1]["text"] += event.text
            else:
                self._content.append({"type": "text", "text": event.text})
        elif isinstance(event, ToolCallStart):
            self._close_call()
            self._content.append({"type": "tool_use", "id": tool_use_id(event.id), "name": event.name, "input": {}})
            self._arguments = []
        elif isinstance(event, ToolCallDelta):
            self._arguments.append(event.arguments)
        elif isinstance(event, ToolCallEnd | Finish):
            self._close_call()
            if isinstance(event, Finish):
                self._finish = event
        elif isinstance(event, Usage):
            self._usage = event

    def build(self) -> dict[str, Any]:
        """The message object; call after the generation ended (its ``Usage`` came)."""
        assert self._usage is not None, "build() before the Usage event"
        return message_dict(self.meta, self._content, self._finish, self._usage)

    def _close_call(self) -> None:
        if not self._content or self._content[-1]["type"] != "tool_use" or not self._arguments:
            return
        try:
            parsed = json.loads("".join(self._arguments))
        except ValueError:
            parsed = {}
        self._content[-1]["input"] = parsed if isinstance(parsed, dict) else {}
        self._arguments = []
