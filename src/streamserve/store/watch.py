"""Watchers: wake whoever waits on a response when its row or its event log changes.

A follower registers a ``Watch`` *before* it reads the store, then waits on it when the read found
nothing new. Whatever is written after the read wakes it; whatever was written before, the read saw.
So a wake-up is never lost, and a spurious one only costs a read. The SQLite store wakes watches when
a write is queued (reads see queued writes); the PostgreSQL store wakes them on its ``LISTEN``
connection when another process's transaction commits.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator


class Watch:
    """One follower's wake-up flag for one response."""

    def __init__(self) -> None:
        self._changed = asyncio.Event()

    def wake(self) -> None:
        """Something changed: the next ``wait`` returns at once."""
        self._changed.set()

    async def wait(self, timeout: float) -> bool:
        """Wait for a change since the last ``wait``; False if ``timeout`` seconds passed without one."""
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except TimeoutError:
            return False
        self._changed.clear()
        return True


class Watchers:
    """The watches of one store, by response id. Used on the event loop only."""

    def __init__(self) -> None:
        self._by_id: dict[str, set[Watch]] = {}

    @contextlib.contextmanager
    def watch(self, response_id: str) -> Iterator[Watch]:
        """A watch on ``response_id`` for the duration of the block."""
        watch = Watch()
        self._by_id.setdefault(response_id, set()).add(watch)
        try:
            yield watch
        finally:
            watches = self._by_id.get(response_id)
            if watches is not None:
                watches.discard(watch)
                if not watches:
                    del self._by_id[response_id]

    def wake(self, response_id: str) -> None:
        """Wake every watch on ``response_id``."""
        for watch in self._by_id.get(response_id, ()):
            watch.wake()

    def wake_all(self) -> None:
        """Wake every watch (a lost ``LISTEN`` connection may have missed changes)."""
        for watches in self._by_id.values():
            for watch in watches:
                watch.wake()
