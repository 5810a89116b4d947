"""SequenceStream: the async iterator of one sequence's token events, on the event loop."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from streamserve.engine.events import SequenceOutput, TokenEvent


class SequenceStream:
    """Yields a sequence's TokenEvents as the engine produces them; ``close()`` aborts the sequence.

    Everything here lives on the event loop: the client puts each step's output in ``queue``.
    ``close`` is synchronous on purpose: it runs in a ``finally:`` while the task is being cancelled,
    where any await would be cancelled too.
    """

    def __init__(self, number: int, prompt_tokens: int, abort: Callable[[int], None]) -> None:
        self.number = number
        self.prompt_tokens = prompt_tokens
        self.queue: asyncio.Queue[SequenceOutput | BaseException] = asyncio.Queue()
        self.cached_tokens = 0
        self.queue_time: float | None = None
        self.drafted = 0  # speculative draft tokens verified for it, and how many were accepted
        self.accepted = 0
        self.backlogged = False  # aborted because its reader fell behind
        self._abort = abort
        self._buffer: deque[TokenEvent] = deque()
        self._done = False
        self._first: SequenceOutput | BaseException | None = None  # taken by ready(), not yet read

    def __aiter__(self) -> SequenceStream:
        return self

    async def ready(self) -> None:
        """Wait for the sequence's first output (its prompt read, or an error) without consuming it.

        From then on ``cached_tokens`` and ``queue_time`` are known. Cancelling the wait loses nothing.
        """
        if self._buffer or self._done or self._first is not None:
            return
        self._first = await self.queue.get()
        if isinstance(self._first, SequenceOutput):
            self.cached_tokens = self._first.cached_tokens
            self.queue_time = self._first.queue_time

    async def __anext__(self) -> TokenEvent:
        if not self._buffer:
            if self._done:
                raise StopAsyncIteration
            if self._first is not None:
                item, self._first = self._first, None
            else:
                item = await self.queue.get()
            if isinstance(item, BaseException):
                self._done = True
                raise item
            self.cached_tokens = item.cached_tokens
            self.queue_time = item.queue_time
            self.drafted += item.drafted
            self.accepted += item.accepted
            if item.error is not None:
                self._done = True
                raise item.error
            self._buffer.extend(item.events)
        event = self._buffer.popleft()
        if event.finish is not None:
            self._done = True
        return event

    def close(self) -> None:
        """Stop the sequence if it is still generating; idempotent."""
        if not self._done:
            self._done = True
            self._abort(self.number)
