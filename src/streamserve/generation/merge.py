"""merge(): interleave several async iterators (the ``n`` sequences of one request) as items arrive.

Each live source has exactly one ``anext()`` in flight, in its own task. A done callback puts
each finished task on a queue, so items come out in the order they arrived and no source is read
more than one item ahead (backpressure, which a pump task per source feeding a shared queue
would lose). ``asyncio.wait`` alone was not used because it returns finished tasks as an
unordered set.

Closing the merged generator, or cancelling the task that consumes it, cancels every task in
flight and closes every source, so each source's ``finally:`` runs: that is how a disconnected
client aborts all sequences of its request. Sources should keep their ``finally:`` synchronous,
since anyio cancels any await made there.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import TypeVar

T = TypeVar("T")


class _Exhausted:
    """The result of ``anext()`` on a source that has no more items."""


_EXHAUSTED = _Exhausted()


async def _next(source: AsyncIterator[T]) -> T | _Exhausted:
    """The source's next item, or ``_EXHAUSTED`` when it ends."""
    try:
        return await anext(source)
    except StopAsyncIteration:
        return _EXHAUSTED


async def _aclose_all(sources: Sequence[AsyncIterator[T]]) -> None:
    """Close every source that can be closed, even if closing one of them raises."""
    async with contextlib.AsyncExitStack() as stack:
        for source in sources:
            aclose = getattr(source, "aclose", None)
            if aclose is not None:
                stack.push_async_callback(aclose)


async def _shutdown(
    running: dict[asyncio.Task[T | _Exhausted], AsyncIterator[T]], sources: Sequence[AsyncIterator[T]]
) -> None:
    """Cancel the tasks in flight, let the sources unwind, then close every source that is idle."""
    for task in running:
        task.cancel()
    try:
        if running:
            await asyncio.wait(running)
    finally:
        busy = {id(source) for task, source in running.items() if not task.done()}
        for task in running:
            if task.done() and not task.cancelled():
                task.exception()
        await _aclose_all([source for source in sources if id(source) not in busy])


async def merge(sources: Sequence[AsyncIterator[T]]) -> AsyncGenerator[T, None]:
    """Yield the items of all ``sources`` in arrival order; the first error from any source ends the merge.

    With a single source it is iterated directly, with no task. On error, early close or
    cancellation, the other sources are cancelled and closed before ``merge`` returns or raises.
    """
    if len(sources) <= 1:
        try:
            for source in sources:
                async for item in source:
                    yield item
        finally:
            await _aclose_all(sources)
        return

    arrived: asyncio.Queue[asyncio.Task[T | _Exhausted]] = asyncio.Queue()
    running: dict[asyncio.Task[T | _Exhausted], AsyncIterator[T]] = {}

    def start(source: AsyncIterator[T]) -> None:
        task = asyncio.create_task(_next(source))
        task.add_done_callback(arrived.put_nowait)
        running[task] = source

    try:
        for source in sources:
            start(source)
        while running:
            task = await arrived.get()
            source = running.pop(task)
            result = task.result()
            if isinstance(result, _Exhausted):
                continue
            start(source)
            yield result
    finally:
        await _shutdown(running, sources)
