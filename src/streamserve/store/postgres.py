"""PostgresStore: the ``ResponseStore`` in a PostgreSQL database shared by every replica.

Writes and reads run on one ``PostgresThread`` per process, in order, so a read sees this process's
earlier writes; each committed batch notifies the responses it changed, and a ``Listener`` turns
other processes' notifications into wake-ups (a live tail across replicas) and cancel requests.

Ownership: every response a replica creates names it as ``owner``. The replica renews a lease in
``replicas`` every ``lease / 3`` seconds (the database's clock, so replicas' clocks need not agree).
``end_orphans`` ends the unfinished responses whose owner's lease has expired, with ``FOR UPDATE SKIP
LOCKED`` so two replicas never end the same one, and clears their owner: the old owner's later
writes (a replica that was only stalled) then match no row and change nothing. Cancels asked on
another replica set ``cancel_requested`` and notify; the owner also polls the flag at each renewal,
in case its listener missed the notification.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Literal

import psycopg

from streamserve.store.base import (
    RESPONSE_COLUMNS,
    ChainLink,
    EndOrphan,
    ItemPage,
    StoredEvent,
    StoredItem,
    StoredResponse,
    StoreError,
    SweepResult,
    UnknownItemError,
    response_from_row,
    walk_chain,
)
from streamserve.store.pg_listen import Listener
from streamserve.store.pg_schema import SWEEP_LOCK, migrate
from streamserve.store.pg_thread import PostgresThread, Session
from streamserve.store.watch import Watch, Watchers

logger = logging.getLogger("streamserve.store")

SWEEP_BATCH = 500
"""Responses deleted per statement by a sweep."""

ORPHAN_BATCH = 100
"""Orphans ended per call at most (the next call takes the rest)."""

_NOW = "extract(epoch FROM clock_timestamp())"


class PostgresStore:
    """The response store in the PostgreSQL database at ``dsn``; see the module docstring.

    ``lease`` is how long this replica's ownership lasts without renewal; ``sweep_interval`` is how often
    one replica of the fleet runs the retention sweep.
    """

    def __init__(self, dsn: str, *, lease: float = 15.0, sweep_interval: float = 60.0) -> None:
        self.dsn = dsn
        self.lease = lease
        self.sweep_interval = sweep_interval
        self.replica = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.migrated_from: int | None = None
        self._db = PostgresThread(self._connect)
        self._watchers = Watchers()
        self._cancel_handler: Callable[[str], None] | None = None
        self._listener = Listener(dsn, self._watchers, self._cancel)
        self._renewer: asyncio.Task[None] | None = None

    @property
    def path(self) -> str:
        """Where the responses are, for the startup log (the URL without a password)."""
        info = psycopg.conninfo.conninfo_to_dict(self.dsn)
        where = f"{info.get('host', '')}:{info.get('port', 5432)}"
        return f"postgresql://{info.get('user', '')}@{where}/{info.get('dbname', '')}"

    async def open(self) -> None:
        """Connect, migrate, take this replica's lease, listen; raises ``StoreError`` if the database fails."""
        try:
            await asyncio.to_thread(self._db.start)
            await self._renew()
            await self._listener.start()
        except psycopg.Error as exc:
            await asyncio.to_thread(self._db.stop)
            raise StoreError(f"cannot open the response database {self.path}: {exc}") from exc
        except BaseException:
            await asyncio.to_thread(self._db.stop)
            raise
        self._renewer = asyncio.create_task(self._renew_forever(), name="store-lease")

    async def close(self) -> None:
        """Stop renewing, give the lease up (this replica's responses have ended), stop listening, close."""
        if self._renewer is not None:
            self._renewer.cancel()
            await asyncio.gather(self._renewer, return_exceptions=True)
        replica = self.replica
        self._db.submit(lambda s: s.conn.execute("DELETE FROM replicas WHERE id = %s", (replica,)))
        await self._listener.stop()
        await asyncio.to_thread(self._db.stop)

    async def flush(self) -> None:
        """Wait for every write submitted so far."""
        await self._db.call(lambda s: None)

    # Writes: queued, applied in order; those of a response this replica no longer owns change nothing.

    def create(self, response: StoredResponse, items: Sequence[StoredItem]) -> None:
        """Insert a response row, owned by this replica, and its input items, all or nothing."""
        row = (*_row(response), self.replica)
        item_rows = [(response.id, position, item.id, item.body) for position, item in enumerate(items)]

        def run(s: Session) -> None:
            with s.conn.transaction(), s.conn.cursor() as cur:
                cur.execute(f"INSERT INTO responses ({RESPONSE_COLUMNS}, owner) VALUES "
                            "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)", row)
                cur.executemany("INSERT INTO input_items (response_id, position, id, body) VALUES (%s, %s, %s, %s)",
                                item_rows)
            s.changed(response.id)

        self._db.submit(run)

    def update(self, response_id: str, *, status: str, body: bytes, done: bool,
               events_expire_at: float | None = None) -> None:
        """Replace a response's status and body (if this replica still owns it)."""
        replica = self.replica

        def run(s: Session) -> None:
            s.conn.execute("UPDATE responses SET status = %s, body = %s, done = %s, events_expire_at = %s "
                           "WHERE id = %s AND owner = %s",
                           (status, body, done, events_expire_at, response_id, replica))
            s.changed(response_id)

        self._db.submit(run)

    def append_event(self, response_id: str, event: StoredEvent) -> None:
        """Append one event to the log (if this replica still owns the response)."""
        replica = self.replica

        def run(s: Session) -> None:
            s.conn.execute("INSERT INTO events (response_id, sequence_number, type, data) SELECT %s, %s, %s, %s "
                           "WHERE EXISTS (SELECT 1 FROM responses WHERE id = %s AND owner = %s)",
                           (response_id, event.sequence_number, event.type, event.data, response_id, replica))
            s.changed(response_id)

        self._db.submit(run)

    def extend(self, response_ids: Sequence[str], expires_at: float) -> None:
        """Push these responses' expiry to at least ``expires_at``."""
        ids = list(response_ids)
        self._db.submit(lambda s: s.conn.execute(
            "UPDATE responses SET expires_at = greatest(expires_at, %s) WHERE id = ANY(%s)", (expires_at, ids)))

    def request_cancel(self, response_id: str) -> None:
        """Flag the response and notify its owner (whichever replica that is)."""
        def run(s: Session) -> None:
            s.conn.execute("UPDATE responses SET cancel_requested = TRUE WHERE id = %s AND NOT done", (response_id,))
            s.cancel(response_id)

        self._db.submit(run)

    # Reads: awaited, they see every write queued before them.

    async def get(self, response_id: str) -> StoredResponse | None:
        """One response row, or None."""
        return await self._db.call(lambda s: _get(s.conn, response_id))

    async def delete(self, response_id: str) -> bool:
        """Remove a response with its items and events (foreign keys cascade)."""
        def run(s: Session) -> bool:
            s.changed(response_id)
            return s.conn.execute("DELETE FROM responses WHERE id = %s", (response_id,)).rowcount > 0

        return await self._db.call(run)

    async def items(self, response_id: str, *, after: str | None, limit: int,
                    order: Literal["asc", "desc"]) -> ItemPage | None:
        """A page of input items; see ``ResponseStore.items``."""
        return await self._db.call(lambda s: _items(s.conn, response_id, after, limit, order))

    async def events(self, response_id: str, *, after: int, limit: int) -> list[StoredEvent]:
        """Logged events above sequence number ``after``, at most ``limit``."""
        return await self._db.call(lambda s: _events(s.conn, response_id, after, limit))

    async def last_sequence(self, response_id: str) -> int:
        """The highest logged sequence number, -1 if none."""
        def run(s: Session) -> int:
            row = s.conn.execute("SELECT max(sequence_number) FROM events WHERE response_id = %s",
                                 (response_id,)).fetchone()
            return -1 if row is None or row[0] is None else int(row[0])

        return await self._db.call(run)

    async def chain(self, response_id: str, *, max_depth: int) -> list[ChainLink]:
        """The conversation ending at ``response_id``, oldest first; see ``ResponseStore.chain``."""
        def run(s: Session) -> list[ChainLink]:
            def link(link_id: str) -> ChainLink | None:
                response = _get(s.conn, link_id)
                if response is None:
                    return None
                return ChainLink(response, [StoredItem(str(i), bytes(b)) for i, b in s.conn.execute(
                    "SELECT id, body FROM input_items WHERE response_id = %s ORDER BY position", (link_id,))])

            return walk_chain(response_id, max_depth, link)

        return await self._db.call(run)

    async def unfinished(self) -> list[StoredResponse]:
        """Responses not marked done (of every replica)."""
        return await self._db.call(lambda s: [
            response_from_row(r) for r in s.conn.execute(f"SELECT {RESPONSE_COLUMNS} FROM responses WHERE NOT done")])

    async def sweep(self, now: float) -> SweepResult:
        """Delete what has expired, if no replica swept within the sweep interval (one replica at a time)."""
        def run(s: Session) -> SweepResult:
            locked = s.conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (SWEEP_LOCK,)).fetchone()
            if locked is None or not locked[0]:
                return SweepResult(0, 0)
            claimed = s.conn.execute(
                f"UPDATE store_meta SET value = {_NOW} WHERE key = 'swept_at' AND value <= {_NOW} - %s RETURNING 1",
                (self.sweep_interval * 0.9,)).fetchone()
            if claimed is None:
                return SweepResult(0, 0)
            responses = s.conn.execute(
                "DELETE FROM responses WHERE id IN (SELECT id FROM responses WHERE done AND expires_at <= %s)",
                (now,)).rowcount
            ids = [r[0] for r in s.conn.execute(
                "SELECT id FROM responses WHERE events_expire_at IS NOT NULL AND events_expire_at <= %s", (now,))]
            s.conn.execute("DELETE FROM events WHERE response_id = ANY(%s)", (ids,))
            s.conn.execute("UPDATE responses SET logged = FALSE, events_expire_at = NULL WHERE id = ANY(%s)", (ids,))
            s.conn.execute(f"DELETE FROM replicas r WHERE expires_at < {_NOW} - 3600 AND NOT EXISTS "
                           "(SELECT 1 FROM responses WHERE owner = r.id AND NOT done)")
            return SweepResult(responses, len(ids))

        return await self._db.call(run)

    # Ownership, watches and cancels.

    def watch(self, response_id: str) -> contextlib.AbstractContextManager[Watch]:
        """A watch woken by any replica's committed change to the response."""
        return self._watchers.watch(response_id)

    def on_cancel(self, handler: Callable[[str], None]) -> None:
        """Where cancels asked of this replica's responses go."""
        self._cancel_handler = handler

    async def end_orphans(self, end: EndOrphan) -> list[str]:
        """End unfinished responses whose owner's lease has expired; see the module docstring."""
        def run(s: Session) -> list[str]:
            rows = s.conn.execute(
                f"SELECT {RESPONSE_COLUMNS} FROM responses r WHERE NOT done AND (owner IS NULL OR NOT EXISTS "
                f"(SELECT 1 FROM replicas p WHERE p.id = r.owner AND p.expires_at > {_NOW})) "
                "ORDER BY created_at LIMIT %s FOR UPDATE SKIP LOCKED", (ORPHAN_BATCH,)).fetchall()
            ended = []
            for row in rows:
                record = response_from_row(row)
                ending = end(record, _events(s.conn, record.id, -1, 2**31))
                if ending.event is not None:
                    s.conn.execute("INSERT INTO events (response_id, sequence_number, type, data) "
                                   "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                                   (record.id, ending.event.sequence_number, ending.event.type, ending.event.data))
                s.conn.execute("UPDATE responses SET status = %s, body = %s, done = TRUE, events_expire_at = %s, "
                               "owner = NULL WHERE id = %s",
                               (ending.status, ending.body, ending.events_expire_at, record.id))
                s.changed(record.id)
                ended.append(record.id)
            return ended

        return await self._db.call(run)

    def _cancel(self, response_id: str) -> None:
        if self._cancel_handler is not None:
            self._cancel_handler(response_id)

    async def _renew(self) -> list[str]:
        """Extend this replica's lease; returns its unfinished responses whose cancel was asked."""
        replica, lease = self.replica, self.lease

        def run(s: Session) -> list[str]:
            s.conn.execute(f"INSERT INTO replicas (id, started_at, expires_at) VALUES (%s, {_NOW}, {_NOW} + %s) "
                           "ON CONFLICT (id) DO UPDATE SET expires_at = EXCLUDED.expires_at", (replica, lease))
            return [r[0] for r in s.conn.execute(
                "SELECT id FROM responses WHERE owner = %s AND cancel_requested AND NOT done", (replica,))]

        return await self._db.call(run)

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self.lease / 3)
            try:
                for response_id in await self._renew():
                    self._cancel(response_id)
            except Exception as exc:
                logger.error("cannot renew this replica's lease: %s", exc)

    def _connect(self) -> Session:
        try:
            conn = psycopg.Connection.connect(self.dsn, autocommit=True)
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to the response database {self.path}: {exc}") from exc
        try:
            self.migrated_from = migrate(conn)
        except BaseException:
            conn.close()
            raise
        return Session(conn)


def _row(r: StoredResponse) -> tuple[Any, ...]:
    return (r.id, r.created_at, r.status, r.background, r.previous_response_id, r.body, r.expires_at,
            r.logged, r.done, r.events_expire_at)


def _get(conn: psycopg.Connection, response_id: str) -> StoredResponse | None:
    row = conn.execute(f"SELECT {RESPONSE_COLUMNS} FROM responses WHERE id = %s", (response_id,)).fetchone()
    return None if row is None else response_from_row(row)


def _events(conn: psycopg.Connection, response_id: str, after: int, limit: int) -> list[StoredEvent]:
    rows = conn.execute("SELECT sequence_number, type, data FROM events WHERE response_id = %s AND "
                        "sequence_number > %s ORDER BY sequence_number LIMIT %s", (response_id, after, limit))
    return [StoredEvent(int(seq), str(kind), bytes(data)) for seq, kind, data in rows]


def _items(conn: psycopg.Connection, response_id: str, after: str | None, limit: int,
           order: Literal["asc", "desc"]) -> ItemPage | None:
    if conn.execute("SELECT 1 FROM responses WHERE id = %s", (response_id,)).fetchone() is None:
        return None
    if after is None:
        start = -1 if order == "asc" else 2**31 - 1
    else:
        row = conn.execute("SELECT position FROM input_items WHERE response_id = %s AND id = %s",
                           (response_id, after)).fetchone()
        if row is None:
            raise UnknownItemError(f"no input item {after!r} in response {response_id!r}")
        start = int(row[0])
    query = "position > %s ORDER BY position ASC" if order == "asc" else "position < %s ORDER BY position DESC"
    rows = conn.execute(f"SELECT id, body FROM input_items WHERE response_id = %s AND {query} LIMIT %s",
                        (response_id, start, limit + 1)).fetchall()
    return ItemPage([StoredItem(str(i), bytes(b)) for i, b in rows[:limit]], has_more=len(rows) > limit)
