"""Listener: one ``LISTEN`` connection per process, turning other processes' commits into wake-ups.

It runs as a task on the event loop (psycopg's async connection): a notification on the events
channel wakes the watches on that response; one on the cancel channel goes to the cancel handler.
If the connection drops, it reconnects and wakes every watch, since notifications sent meanwhile
are lost (watchers then read the store again, which is always the truth).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import psycopg

from streamserve.store.pg_thread import CANCEL_CHANNEL, EVENTS_CHANNEL
from streamserve.store.watch import Watchers

logger = logging.getLogger("streamserve.store")

RECONNECT_S = 1.0
"""Pause before the listener connects again after losing its connection."""


class Listener:
    """Listens on both channels for one store; ``start`` once connected, ``stop`` at close."""

    def __init__(self, dsn: str, watchers: Watchers, on_cancel: Callable[[str], None]) -> None:
        self._dsn = dsn
        self._watchers = watchers
        self._on_cancel = on_cancel
        self._task: asyncio.Task[None] | None = None
        self._conn: psycopg.AsyncConnection | None = None

    async def start(self) -> None:
        """Connect and listen (raises if the database cannot be reached), then follow in a task."""
        self._conn = await self._connect()
        self._task = asyncio.create_task(self._run(), name="store-listener")

    async def stop(self) -> None:
        """Stop listening and close the connection."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._conn is not None:
            await self._conn.close()

    async def _connect(self) -> psycopg.AsyncConnection:
        conn = await psycopg.AsyncConnection.connect(self._dsn, autocommit=True)
        await conn.execute(f"LISTEN {EVENTS_CHANNEL}")
        await conn.execute(f"LISTEN {CANCEL_CHANNEL}")
        return conn

    async def _run(self) -> None:
        while True:
            try:
                assert self._conn is not None
                async for note in self._conn.notifies():
                    if note.channel == EVENTS_CHANNEL:
                        self._watchers.wake(note.payload)
                    elif note.channel == CANCEL_CHANNEL:
                        self._on_cancel(note.payload)
            except psycopg.Error as exc:
                logger.warning("response store listener lost its connection (%s); reconnecting", exc)
            with contextlib.suppress(psycopg.Error):
                if self._conn is not None:
                    await self._conn.close()
            while True:
                await asyncio.sleep(RECONNECT_S)
                try:
                    self._conn = await self._connect()
                    break
                except psycopg.Error as exc:
                    logger.warning("response store listener cannot reconnect: %s", exc)
            self._watchers.wake_all()
