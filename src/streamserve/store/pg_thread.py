"""PostgresThread: the ``DatabaseThread`` over one psycopg connection, with notifications per batch.

A batch of queued operations runs as one transaction. Operations say which responses they changed
(``Session.changed``); one ``pg_notify`` per batch names them, and PostgreSQL delivers it when the
transaction commits, so a listener that reads after the notification sees the change.

Unlike SQLite, a failed statement aborts the whole PostgreSQL transaction. The batch runs without
savepoints first; if a statement fails, it is rolled back and run again with a savepoint per
operation, so one bad write still costs only itself. A broken connection fails its batch and is
opened again for the next one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import psycopg

from streamserve.store.worker import DatabaseThread, Job, Outcome

logger = logging.getLogger("streamserve.store")

EVENTS_CHANNEL = "streamserve_events"
"""Notified with the ids of responses whose row or event log changed."""

CANCEL_CHANNEL = "streamserve_cancel"
"""Notified with the id of a response whose cancel was asked."""


class Session:
    """The store thread's connection, and what the current batch changed."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        self._changed: set[str] = set()
        self._cancels: set[str] = set()

    def changed(self, response_id: str) -> None:
        """The response's row or log changed in this batch: notify listeners at commit."""
        self._changed.add(response_id)

    def cancel(self, response_id: str) -> None:
        """Ask the owner of the response to cancel it, at commit."""
        self._cancels.add(response_id)

    def send_notifications(self) -> None:
        """Queue this batch's notifications (delivered when its transaction commits)."""
        for channel, ids in ((EVENTS_CHANNEL, self._changed), (CANCEL_CHANNEL, self._cancels)):
            if ids:
                self.conn.execute("SELECT pg_notify(%s, unnest(%s::text[]))", (channel, sorted(ids)))
        self.forget()

    def forget(self) -> None:
        """Drop the batch's notifications (it was rolled back)."""
        self._changed.clear()
        self._cancels.clear()


class PostgresThread(DatabaseThread[Session]):
    """Runs batches on one PostgreSQL connection; reconnects with ``reconnect`` when it breaks."""

    def __init__(self, connect: Callable[[], Session], name: str = "streamserve-store") -> None:
        super().__init__(connect, name)
        self._reconnect = connect

    def transact(self, session: Session, jobs: list[Job]) -> list[Outcome]:
        """The batch in one transaction; see the module docstring."""
        if session.conn.broken or session.conn.closed:
            try:
                session.conn = self._reconnect().conn
            except Exception as exc:
                logger.error("cannot reconnect to the response database: %s", exc)
                return [(job, None, exc) for job in jobs]
        try:
            return self._fast(session, jobs)
        except psycopg.Error as exc:
            session.forget()
            if session.conn.broken or session.conn.closed:
                logger.error("the response database connection broke: %s", exc)
                return [(job, None, exc) for job in jobs]
        try:
            return self._careful(session, jobs)
        except psycopg.Error as exc:
            session.forget()
            logger.error("store transaction failed: %s", exc)
            return [(job, None, exc) for job in jobs]

    def _fast(self, session: Session, jobs: list[Job]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        with session.conn.transaction():
            for job in jobs:
                try:
                    outcomes.append((job, job.run(session), None))
                except psycopg.Error:
                    raise  # the transaction is aborted: run the batch again, carefully
                except Exception as exc:  # a read's own error (a broken chain): the transaction goes on
                    outcomes.append((job, None, exc))
            session.send_notifications()
        self.transactions += 1
        return outcomes

    def _careful(self, session: Session, jobs: list[Job]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        with session.conn.transaction():
            for job in jobs:
                try:
                    with session.conn.transaction():  # a savepoint
                        outcomes.append((job, job.run(session), None))
                except Exception as exc:
                    outcomes.append((job, None, exc))
            session.send_notifications()
        self.transactions += 1
        return outcomes

    def close_connection(self, session: Session) -> None:
        """Close the connection."""
        session.conn.close()
