"""SequenceStream: the async iterator of one sequence's token events, on the asyncio side."""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from streamserve.engine.events import TokenEvent
from streamserve.engine.sequence import Sequence

if TYPE_CHECKING:
    from streamserve.engine.engine import Engine


class SequenceStream:
    """Yields a sequence's TokenEvents as the engine produces them; ``close()`` aborts the sequence.

    ``close`` is synchronous on purpose: it runs in a ``finally:`` while the task is being
    cancelled, where any await would be cancelled too.
    """

    def __init__(self, engine: Engine, seq: Sequence) -> None:
        self._engine = engine
        self._seq = seq
        self._buffer: deque[TokenEvent] = deque()
        self._done = False

    @property
    def prompt_tokens(self) -> int:
        """Number of prompt tokens."""
        return len(self._seq.prompt_ids)

    @property
    def cached_tokens(self) -> int:
        """Prompt tokens reused from the prompt cache (known once the first event has arrived)."""
        return self._seq.num_cached

    @property
    def queue_time(self) -> float | None:
        """Seconds spent waiting for a lane, once admitted."""
        if self._seq.admit_time is None:
            return None
        return self._seq.admit_time - self._seq.arrival_time

    def __aiter__(self) -> SequenceStream:
        return self

    async def __anext__(self) -> TokenEvent:
        if not self._buffer:
            if self._done:
                raise StopAsyncIteration
            item = await self._seq.queue.get()
            if isinstance(item, BaseException):
                self._done = True
                raise item
            self._buffer.extend(item)
        event = self._buffer.popleft()
        if event.finish is not None:
            self._done = True
        return event

    def close(self) -> None:
        """Stop the sequence if it is still generating; idempotent."""
        if not self._done:
            self._done = True
            self._engine.abort(self._seq)
