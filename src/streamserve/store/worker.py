"""DatabaseThread: one thread owns one database connection and runs every operation on it, in order.

``SQLiteThread`` runs batches on an SQLite connection in autocommit mode (``isolation_level=None``): it
opens and commits each batch's transaction itself. The PostgreSQL store brings its own subclass.

The event loop only puts operations on a queue (microseconds). The thread takes whatever has
queued up and runs it as one transaction, so a burst of streamed events costs one commit, and
then hands results back with one ``call_soon_threadsafe`` per batch. Because reads queue behind the
writes submitted before them, a read always sees those writes.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")
C = TypeVar("C")

logger = logging.getLogger("streamserve.store")

MAX_BATCH = 1024
"""Operations run in one transaction at most; a long backlog still commits regularly."""

Operation = Callable[[Any], Any]
Outcome = tuple["Job", Any, BaseException | None]


@dataclass(slots=True)
class Job:
    """One queued operation; ``future`` is None for a write (fire and forget)."""

    run: Operation
    future: asyncio.Future[Any] | None
    loop: asyncio.AbstractEventLoop | None


_STOP = object()


class DatabaseThread(Generic[C]):
    """Runs operations on ``connect()``'s connection in a dedicated thread; see the module docstring.

    Subclasses say how one batch runs as a transaction (``transact``) and how the connection closes.
    """

    def __init__(self, connect: Callable[[], C], name: str = "streamserve-store") -> None:
        self._connect = connect
        self._queue: queue.SimpleQueue[Job | object] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._ready = threading.Event()
        self._open_error: BaseException | None = None
        self._closed = False
        self.transactions = 0
        """Batches committed so far (each holds every operation that had queued up)."""

    def start(self) -> None:
        """Start the thread and wait until the connection is open; re-raises what ``connect()`` raised."""
        self._thread.start()
        self._ready.wait()
        if self._open_error is not None:
            self._thread.join()
            raise self._open_error

    def submit(self, run: Operation) -> None:
        """Queue a write; its failure is logged, not raised."""
        if self._closed:
            logger.error("store write after close dropped")
            return
        self._queue.put(Job(run, None, None))

    async def call(self, run: Callable[[C], T]) -> T:
        """Queue an operation and wait for its result (it runs after every operation queued before it)."""
        if self._closed:
            raise RuntimeError("the store is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(Job(run, future, loop))
        return await future

    def stop(self) -> None:
        """Run what is queued, close the connection and join the thread (blocking)."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join()

    def _main(self) -> None:
        try:
            conn = self._connect()
        except BaseException as exc:
            self._open_error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            while self._run_batch(conn):
                pass
        finally:
            self.close_connection(conn)

    def transact(self, conn: C, jobs: list[Job]) -> list[Outcome]:
        """Run ``jobs`` in order as one transaction; one failing job must not undo the others."""
        raise NotImplementedError

    def close_connection(self, conn: C) -> None:
        """Close the connection (on the thread, after the last batch)."""
        raise NotImplementedError

    def _run_batch(self, conn: C) -> bool:
        """Run one batch as one transaction; False once the stop marker was seen."""
        batch = [self._queue.get()]
        while len(batch) < MAX_BATCH:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        jobs = [job for job in batch if isinstance(job, Job)]
        if jobs:
            _resolve(self.transact(conn, jobs))
        return len(jobs) == len(batch)


class SQLiteThread(DatabaseThread[sqlite3.Connection]):
    """A ``DatabaseThread`` over an SQLite connection in autocommit mode."""

    def transact(self, conn: sqlite3.Connection, jobs: list[Job]) -> list[Outcome]:
        """One ``BEGIN``/``COMMIT``; a failed statement rolls back only itself (SQLite's statement rollback)."""
        outcomes: list[Outcome] = []
        try:
            conn.execute("BEGIN")
            for job in jobs:
                try:
                    outcomes.append((job, job.run(conn), None))
                except Exception as exc:  # one bad operation must not undo the others
                    outcomes.append((job, None, exc))
            conn.execute("COMMIT")
            self.transactions += 1
        except sqlite3.Error as exc:  # the transaction itself failed: nothing of the batch is applied
            logger.error("store transaction failed: %s", exc)
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            outcomes = [(job, None, exc) for job in jobs]
        return outcomes

    def close_connection(self, conn: sqlite3.Connection) -> None:
        """Close the SQLite connection."""
        conn.close()


def _resolve(outcomes: list[Outcome]) -> None:
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any, BaseException | None]]] = {}
    for job, value, exc in outcomes:
        if job.future is None or job.loop is None:
            if exc is not None:
                logger.error("store write failed: %s: %s", type(exc).__name__, exc)
            continue
        by_loop.setdefault(job.loop, []).append((job.future, value, exc))
    for loop, results in by_loop.items():
        try:
            loop.call_soon_threadsafe(_set_all, results)
        except RuntimeError:
            logger.debug("event loop closed; %d store results dropped", len(results))


def _set_all(results: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for future, value, exc in results:
        if future.done():  # the caller was cancelled
            continue
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(value)
