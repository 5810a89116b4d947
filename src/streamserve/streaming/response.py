"""Drive one Generation to the client: as server-sent events, or collected into one response object."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Any, Protocol

from streamserve.engine import EngineError
from streamserve.moderation import ModerationError
from streamserve.streaming import sse
from streamserve.streaming.chunks import ChunkFormatter, ResponseBuilder, ResponseMeta
from streamserve.streaming.events import Event, Finish, TextDelta, ToolCallDelta, ToolCallStart, Usage
from streamserve.streaming.generation import Generation


class Observer(Protocol):
    """Watches one response for metrics and the request log."""

    def on_text(self) -> None:
        """A text or tool-call delta is about to go out."""

    def on_end(self, outcome: str, usage: Usage | None) -> None:
        """The response ended: ``outcome`` is the finish reasons, ``error`` or ``disconnect``."""


async def stream_sse(meta: ResponseMeta, generation: Generation, observer: Observer) -> AsyncIterator[bytes]:
    """Every chunk as one SSE event, flushed as soon as it exists, then ``[DONE]``.

    An engine failure after the first byte becomes one error event and ``[DONE]``.
    """
    formatter = ChunkFormatter(meta)
    try:
        for chunk in formatter.opening():
            yield sse.encode(chunk)
        async with aclosing(observed(generation, observer)) as events:
            async for event in events:
                for chunk in formatter.render(event):
                    yield sse.encode(chunk)
        yield sse.DONE
    except EngineError as exc:
        yield sse.error_event(str(exc), "server_error")
        yield sse.DONE
    except ModerationError as exc:
        yield sse.error_event(f"moderation failed: {exc}", "server_error", code="moderation_failed")
        yield sse.DONE


async def collect(meta: ResponseMeta, generation: Generation, observer: Observer) -> dict[str, Any]:
    """The whole response as one ``chat.completion`` / ``text_completion`` object.

    It is built from the same events as the stream, so the joined deltas equal the collected text.
    """
    builder = ResponseBuilder(meta)
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
