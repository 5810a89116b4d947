"""SQLiteStore: the ``ResponseStore`` in one SQLite file under the data directory.

WAL journal with ``synchronous=NORMAL``: a commit survives a crash of the process (not of the
machine's power) and readers never wait for the writer. Every operation runs on one
``SQLiteThread``, so the event loop never waits on the disk. One process owns a data directory
(an exclusive ``flock`` on ``streamserve.lock``): that lock is its lease, so at start every
unfinished response of an earlier owner is an orphan, and none are later.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any, Literal

from streamserve.store.base import (
    RESPONSE_COLUMNS,
    ChainLink,
    EndOrphan,
    ItemPage,
    StoredEvent,
    StoredItem,
    StoredResponse,
    StoreError,
    StoreLockedError,
    SweepResult,
    UnknownItemError,
    response_from_row,
    walk_chain,
)
from streamserve.store.schema import migrate
from streamserve.store.watch import Watch, Watchers
from streamserve.store.worker import SQLiteThread

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX
    fcntl = None  # type: ignore[assignment]

DATABASE_NAME = "responses.sqlite3"
LOCK_NAME = "streamserve.lock"
SWEEP_BATCH = 500
"""Responses deleted per transaction by a sweep, so a large sweep never holds up streamed writes for long."""



class SQLiteStore:
    """The response store in ``data_dir/responses.sqlite3``; see the module docstring."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.path = data_dir / DATABASE_NAME
        self._db = SQLiteThread(self._connect)
        self._lock: IO[str] | None = None
        self._watchers = Watchers()
        self._cancel_handler: Callable[[str], None] | None = None
        self.replica = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self.migrated_from: int | None = None

    async def open(self) -> None:
        """Lock the data directory, open the database and migrate its schema (in the store's thread)."""
        await asyncio.to_thread(self._take_lock)
        try:
            await asyncio.to_thread(self._db.start)
        except sqlite3.Error as exc:
            self._release_lock()
            raise StoreError(f"cannot open the response database {self.path}: {exc}") from exc
        except BaseException:
            self._release_lock()
            raise

    async def close(self) -> None:
        """Apply pending writes, close the database and release the lock."""
        await asyncio.to_thread(self._db.stop)
        self._release_lock()

    async def flush(self) -> None:
        """Wait for every write submitted so far."""
        await self._db.call(lambda conn: None)

    # Writes: queued, applied in order.

    def create(self, response: StoredResponse, items: Sequence[StoredItem]) -> None:
        """Insert a response row and its input items, all or nothing."""
        row = (*_row(response), self.replica)
        item_rows = [(response.id, position, item.id, item.body) for position, item in enumerate(items)]

        def run(conn: sqlite3.Connection) -> None:
            with _savepoint(conn):
                conn.execute(f"INSERT INTO responses ({RESPONSE_COLUMNS}, owner) "
                             "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
                conn.executemany("INSERT INTO input_items (response_id, position, id, body) VALUES (?, ?, ?, ?)",
                                 item_rows)

        self._db.submit(run)

    def update(self, response_id: str, *, status: str, body: bytes, done: bool,
               events_expire_at: float | None = None) -> None:
        """Replace a response's status and body."""
        self._db.submit(lambda conn: conn.execute(
            "UPDATE responses SET status = ?, body = ?, done = ?, events_expire_at = ? WHERE id = ?",
            (status, body, int(done), events_expire_at, response_id)))
        self._watchers.wake(response_id)

    def append_event(self, response_id: str, event: StoredEvent) -> None:
        """Append one event to the log."""
        self._db.submit(lambda conn: conn.execute(
            "INSERT INTO events (response_id, sequence_number, type, data) VALUES (?, ?, ?, ?)",
            (response_id, event.sequence_number, event.type, event.data)))
        self._watchers.wake(response_id)

    def extend(self, response_ids: Sequence[str], expires_at: float) -> None:
        """Push these responses' expiry to at least ``expires_at``."""
        rows = [(expires_at, response_id) for response_id in response_ids]
        self._db.submit(lambda conn: conn.executemany(
            "UPDATE responses SET expires_at = max(expires_at, ?) WHERE id = ?", rows))

    # Reads: awaited, they see every write queued before them.

    async def get(self, response_id: str) -> StoredResponse | None:
        """One response row, or None."""
        return await self._db.call(lambda conn: _get(conn, response_id))

    async def delete(self, response_id: str) -> bool:
        """Remove a response with its items and events (foreign keys cascade)."""
        deleted = await self._db.call(
            lambda conn: conn.execute("DELETE FROM responses WHERE id = ?", (response_id,)).rowcount > 0)
        self._watchers.wake(response_id)
        return deleted

    async def items(self, response_id: str, *, after: str | None, limit: int,
                    order: Literal["asc", "desc"]) -> ItemPage | None:
        """A page of input items; see ``ResponseStore.items``."""
        return await self._db.call(lambda conn: _items(conn, response_id, after, limit, order))

    async def events(self, response_id: str, *, after: int, limit: int) -> list[StoredEvent]:
        """Logged events above sequence number ``after``, at most ``limit``."""
        def run(conn: sqlite3.Connection) -> list[StoredEvent]:
            rows = conn.execute(
                "SELECT sequence_number, type, data FROM events WHERE response_id = ? AND sequence_number > ? "
                "ORDER BY sequence_number LIMIT ?", (response_id, after, limit)).fetchall()
            return [StoredEvent(int(seq), str(kind), bytes(data)) for seq, kind, data in rows]

        return await self._db.call(run)

    async def last_sequence(self, response_id: str) -> int:
        """The highest logged sequence number, -1 if none."""
        def run(conn: sqlite3.Connection) -> int:
            row = conn.execute("SELECT max(sequence_number) FROM events WHERE response_id = ?",
                               (response_id,)).fetchone()
            return -1 if row[0] is None else int(row[0])

        return await self._db.call(run)

    async def chain(self, response_id: str, *, max_depth: int) -> list[ChainLink]:
        """The conversation ending at ``response_id``, oldest first; see ``ResponseStore.chain``."""
        def run(conn: sqlite3.Connection) -> list[ChainLink]:
            def link(link_id: str) -> ChainLink | None:
                response = _get(conn, link_id)
                if response is None:
                    return None
                return ChainLink(response, [StoredItem(str(i), bytes(b)) for i, b in conn.execute(
                    "SELECT id, body FROM input_items WHERE response_id = ? ORDER BY position", (link_id,))])

            return walk_chain(response_id, max_depth, link)

        return await self._db.call(run)

    async def unfinished(self) -> list[StoredResponse]:
        """Responses not marked done."""
        return await self._db.call(lambda conn: [
            response_from_row(r) for r in conn.execute(f"SELECT {RESPONSE_COLUMNS} FROM responses WHERE done = 0")])

    async def sweep(self, now: float) -> SweepResult:
        """Delete what has expired, in batches of ``SWEEP_BATCH`` so streamed writes interleave."""
        responses = logs = 0
        while True:
            deleted = await self._db.call(lambda conn: conn.execute(
                "DELETE FROM responses WHERE id IN (SELECT id FROM responses WHERE done = 1 AND expires_at <= ? "
                "LIMIT ?)", (now, SWEEP_BATCH)).rowcount)
            responses += deleted
            if deleted < SWEEP_BATCH:
                break
        while True:
            dropped = await self._db.call(lambda conn: _drop_event_logs(conn, now))
            logs += dropped
            if dropped < SWEEP_BATCH:
                break
        return SweepResult(responses, logs)

    # One process: cancels and watches stay in it.

    def watch(self, response_id: str) -> contextlib.AbstractContextManager[Watch]:
        """A watch woken by this process's writes to the response."""
        return self._watchers.watch(response_id)

    def request_cancel(self, response_id: str) -> None:
        """Flag the response and hand the cancel to this process's handler (it owns every running response)."""
        self._db.submit(lambda conn: conn.execute(
            "UPDATE responses SET cancel_requested = 1 WHERE id = ? AND done = 0", (response_id,)))
        if self._cancel_handler is not None:
            self._cancel_handler(response_id)

    def on_cancel(self, handler: Callable[[str], None]) -> None:
        """Where cancels go."""
        self._cancel_handler = handler

    async def end_orphans(self, end: EndOrphan) -> list[str]:
        """End the unfinished responses of earlier processes (this one holds the directory's lock)."""
        def run(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute(f"SELECT {RESPONSE_COLUMNS} FROM responses WHERE done = 0 AND owner IS NOT ?",
                                (self.replica,)).fetchall()
            ended = []
            for row in rows:
                record = response_from_row(row)
                logged = [StoredEvent(int(q), str(t), bytes(d)) for q, t, d in conn.execute(
                    "SELECT sequence_number, type, data FROM events WHERE response_id = ? ORDER BY sequence_number",
                    (record.id,))]
                ending = end(record, logged)
                if ending.event is not None:
                    conn.execute("INSERT INTO events (response_id, sequence_number, type, data) VALUES (?, ?, ?, ?)",
                                 (record.id, ending.event.sequence_number, ending.event.type, ending.event.data))
                conn.execute("UPDATE responses SET status = ?, body = ?, done = 1, events_expire_at = ?, owner = NULL "
                             "WHERE id = ?", (ending.status, ending.body, ending.events_expire_at, record.id))
                ended.append(record.id)
            return ended

        ended = await self._db.call(run)
        for response_id in ended:
            self._watchers.wake(response_id)
        return ended

    # Connection and lock, on the store's own thread.

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA busy_timeout = 5000")
            self.migrated_from = migrate(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _take_lock(self) -> None:
        lock = _lock_data_dir(self.data_dir)
        lock.seek(0)
        lock.truncate()
        lock.write(str(os.getpid()))
        lock.flush()
        self._lock = lock

    def _release_lock(self) -> None:
        if self._lock is not None:
            self._lock.close()  # closing the descriptor releases the flock
            self._lock = None


def check_data_dir(data_dir: Path) -> None:
    """Raise ``StoreError`` now if a store could not open ``data_dir`` (another server holds it).

    The command line calls this before the server binds its port, so a second server on the same
    directory ends with one line instead of a failed startup's traceback.
    """
    _lock_data_dir(data_dir).close()  # closing the descriptor releases the flock


def _lock_data_dir(data_dir: Path) -> IO[str]:
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        lock = (data_dir / LOCK_NAME).open("a+")
    except OSError as exc:
        raise StoreError(f"cannot use the data directory {data_dir}: {exc}") from exc
    if fcntl is not None:
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.seek(0)
            owner = lock.read().strip() or "unknown"
            lock.close()
            raise StoreLockedError(
                f"another streamserve (pid {owner}) is using the data directory {data_dir}; "
                "give each server its own --data-dir") from None
    return lock


@contextlib.contextmanager
def _savepoint(conn: sqlite3.Connection) -> Any:
    conn.execute("SAVEPOINT op")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK TO op")
        conn.execute("RELEASE op")
        raise
    conn.execute("RELEASE op")


def _row(r: StoredResponse) -> tuple[Any, ...]:
    return (r.id, r.created_at, r.status, int(r.background), r.previous_response_id, r.body, r.expires_at,
            int(r.logged), int(r.done), r.events_expire_at)


def _get(conn: sqlite3.Connection, response_id: str) -> StoredResponse | None:
    row = conn.execute(f"SELECT {RESPONSE_COLUMNS} FROM responses WHERE id = ?", (response_id,)).fetchone()
    return None if row is None else response_from_row(row)


def _items(conn: sqlite3.Connection, response_id: str, after: str | None, limit: int,
           order: Literal["asc", "desc"]) -> ItemPage | None:
    if conn.execute("SELECT 1 FROM responses WHERE id = ?", (response_id,)).fetchone() is None:
        return None
    if after is None:
        start = -1 if order == "asc" else 2**62
    else:
        row = conn.execute("SELECT position FROM input_items WHERE response_id = ? AND id = ?",
                           (response_id, after)).fetchone()
        if row is None:
            raise UnknownItemError(f"no input item {after!r} in response {response_id!r}")
        start = int(row[0])
    query = "position > ? ORDER BY position ASC" if order == "asc" else "position < ? ORDER BY position DESC"
    rows = conn.execute(f"SELECT id, body FROM input_items WHERE response_id = ? AND {query} LIMIT ?",
                        (response_id, start, limit + 1)).fetchall()
    items = [StoredItem(str(i), bytes(b)) for i, b in rows[:limit]]
    return ItemPage(items, has_more=len(rows) > limit)


def _drop_event_logs(conn: sqlite3.Connection, now: float) -> int:
    ids = [row[0] for row in conn.execute(
        "SELECT id FROM responses WHERE events_expire_at IS NOT NULL AND events_expire_at <= ? LIMIT ?",
        (now, SWEEP_BATCH))]
    conn.executemany("DELETE FROM events WHERE response_id = ?", [(i,) for i in ids])
    conn.executemany("UPDATE responses SET logged = 0, events_expire_at = NULL WHERE id = ?", [(i,) for i in ids])
    return len(ids)
