"""The one driver: a Generation's neutral events through a wire format's formatter, framed for the wire.

Every API family goes through ``drive``; they differ only in the formatter (chat or completion chunks,
Responses events) and the framing (data-only server-sent events ending with ``[DONE]``, or named events).
An engine or moderation failure after the stream began becomes the format's own error event(s).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from streamserve.engine import EngineError, EngineStoppedError
from streamserve.formats import anthropic, sse
from streamserve.generation.events import Event, Finish, TextDelta, ToolCallDelta, ToolCallStart, Usage
from streamserve.generation.generation import Generation
from streamserve.moderation import ModerationError

logger = logging.getLogger("streamserve.pipeline")

Failure = EngineError | ModerationError
"""What can end a generation after its stream began."""


class Observer(Protocol):
    """Watches one response for metrics and the request log."""

    def on_text(self) -> None:
        """A text or tool-call delta is about to go out."""

    def on_end(self, outcome: str, usage: Usage | None) -> None:
        """The response ended: ``outcome`` is the finish reasons, ``error`` or ``disconnect``."""


class Formatter(Protocol):
    """A wire format: what goes out before any event, for each event, and when the generation fails."""

    def opening(self) -> list[dict[str, Any]]:
        """Events sent before the first generated one."""

    def render(self, event: Event) -> list[dict[str, Any]]:
        """The wire events for one neutral event."""

    def failure(self, error: Failure, usage: Usage | None) -> list[dict[str, Any]]:
        """The wire events that end a stream the generation of which failed."""


class Builder(Protocol):
    """A whole (non-streamed) response, built from the same events a stream sends."""

    def add(self, event: Event) -> None:
        """Record one neutral event."""

    def build(self) -> dict[str, Any]:
        """The response object, once the generation has ended."""


@dataclass(frozen=True, slots=True)
class Framing:
    """How wire events go on an SSE stream: data-only (``[DONE]`` last) or named by their ``type``.

    ``heartbeat``, when set, is the event sent every ``heartbeat_s`` seconds while the prompt is read,
    before the formatter's opening (Anthropic's ``ping``), so the stream never looks idle.
    """

    named: bool
    heartbeat: Mapping[str, Any] | None = None
    heartbeat_s: float = 5.0

    def frame(self, event: Mapping[str, Any]) -> bytes:
        """One event's bytes."""
        if self.named:
            return sse.named(event["type"], orjson.dumps(dict(event)))
        return sse.encode(event)

    @property
    def end(self) -> bytes:
        """What closes the stream after its last event."""
        return b"" if self.named else sse.DONE


DATA_ONLY = Framing(named=False)
"""OpenAI's Chat Completions and Completions streams."""

NAMED = Framing(named=True)
"""Named events: the Responses API."""

PINGED = Framing(named=True, heartbeat=anthropic.PING)
"""Named events with ``ping`` while the prompt is read: Anthropic's Messages API."""


async def drive(generation: Generation, formatter: Formatter,
                observer: Observer) -> AsyncGenerator[dict[str, Any], None]:
    """The generation's wire events, as the formatter renders them; a failure ends them with its error events."""
    try:
        for opening in formatter.opening():
            yield opening
    except BaseException:  # the consumer left before the first token: observed() never began, so end it here
        generation.close()
        observer.on_end("disconnect", generation.usage())
        raise
    try:
        async with aclosing(observed(generation, observer)) as events:
            async for event in events:
                for wire in formatter.render(event):
                    yield wire
    except (EngineError, ModerationError) as exc:
        if not isinstance(exc, EngineStoppedError):
            logger.error("generation failed: %s", exc)
        for wire in formatter.failure(exc, generation.usage()):
            yield wire


async def stream(generation: Generation, formatter: Formatter, observer: Observer,
                 framing: Framing) -> AsyncIterator[bytes]:
    """``drive``, framed: each event flushed as soon as it exists, then the framing's end.

    With a heartbeat the opening waits until the prompt is read (so it can report the prompt cache's
    part), sending the heartbeat meanwhile; a client that leaves then aborts the generation.
    """
    if framing.heartbeat is not None:
        try:
            async for _ in generation.waiting(framing.heartbeat_s):
                yield framing.frame(framing.heartbeat)
        except BaseException:
            generation.close()
            observer.on_end("disconnect", generation.usage())
            raise
    async with aclosing(drive(generation, formatter, observer)) as events:
        async for event in events:
            yield framing.frame(event)
    if framing.end:
        yield framing.end


async def collect(generation: Generation, builder: Builder, observer: Observer) -> dict[str, Any]:
    """The whole response as one object, built from the same events as the stream (joined deltas = the text)."""
    async with aclosing(observed(generation, observer)) as events:
        async for event in events:
            builder.add(event)
    return builder.build()


async def observed(generation: Generation, observer: Observer) -> AsyncGenerator[Event, None]:
    """The generation's events, reported to ``observer``; its ``finally`` is where a disconnect lands.

    Whether the client went away (cancellation) or the consumer stopped, ``finally`` aborts the
    sequences still running and tells the observer how the response ended.
    """
    reasons: list[str] = []
    usage: Usage | None = None
    outcome = "disconnect"
    try:
        async for event in generation.events():
            if isinstance(event, TextDelta | ToolCallStart | ToolCallDelta):
                observer.on_text()
            elif isinstance(event, Finish):
                reasons.append(event.reason)
            elif isinstance(event, Usage):
                usage = event
            yield event
        outcome = ",".join(reasons)
    except (EngineError, ModerationError):
        outcome = "error"
        raise
    finally:
        generation.close()
        observer.on_end(outcome, usage or generation.usage())
