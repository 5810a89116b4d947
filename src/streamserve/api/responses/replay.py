"""follow(): a response's stream from any point: the stored log in pages, then live events until the end.

Why nothing is lost or repeated: a run appends each event to the store *before* it publishes it, and
a store read sees every write queued before it. So a follower that wakes because event N exists can
always read events up to N, from the run's in-memory buffer if it still holds them, otherwise from
the store. The cursor only moves forward, one sequence number at a time.

A response running on another replica (a shared store) is tailed from the store: a watch is set
before each read, so an event committed after the read wakes the follower, and one committed before
it is in the read. The row is read before the events, so once it says done, the events read after
it are the last.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator

from streamserve.api.responses.runs import RunRegistry
from streamserve.store import ResponseStore, StoredEvent

logger = logging.getLogger("streamserve.responses")

PAGE_EVENTS = 256
"""Events read from the store at a time: a long response is replayed in pages, never loaded whole."""

KEEPALIVE_S = 15.0
"""While waiting for the next live event (a queued response), a keep-alive goes out this often."""


async def follow(store: ResponseStore, runs: RunRegistry, response_id: str, after: int,
                 *, keepalive_s: float = KEEPALIVE_S) -> AsyncGenerator[StoredEvent | None, None]:
    """Every event after sequence number ``after``, in order, until the response has ended.

    Yields None when ``keepalive_s`` passes without an event (the caller sends an SSE comment).
    """
    cursor = after
    while True:
        run = runs.get(response_id)
        if run is not None:
            buffered = run.since(cursor)
            if buffered:
                for event in buffered:
                    yield event
                cursor = buffered[-1].sequence_number
                continue
            if buffered is not None:  # caught up with the live run
                if run.finished:
                    return
                try:
                    await asyncio.wait_for(run.wait(cursor), keepalive_s)
                except TimeoutError:
                    yield None
                continue
        if run is None:
            async for stored in _tail(store, response_id, cursor, keepalive_s):
                yield stored
            return
        page = await store.events(response_id, after=cursor, limit=PAGE_EVENTS)
        for event in page:
            yield event
        if page:
            cursor = page[-1].sequence_number
            continue
        if not run.finished:
            logger.error("response %s: events after %d are neither stored nor buffered", response_id, cursor)
        return


async def _tail(store: ResponseStore, response_id: str, after: int,
                keepalive_s: float) -> AsyncGenerator[StoredEvent | None, None]:
    """The stored events after ``after`` until the response is done (or deleted), waiting for new ones."""
    cursor = after
    with store.watch(response_id) as watch:
        while True:
            record = await store.get(response_id)
            page = await store.events(response_id, after=cursor, limit=PAGE_EVENTS)
            for event in page:
                yield event
            if page:
                cursor = page[-1].sequence_number
                continue
            if record is None or record.done:
                return
            if not await watch.wait(keepalive_s):
                yield None
