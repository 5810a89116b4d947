"""The SQLite schema, versioned with ``PRAGMA user_version``: each migration runs once, in order.

A database written by a newer streamserve (a higher version than this code knows) is refused
rather than guessed at.
"""

from __future__ import annotations

import sqlite3

from streamserve.store.base import StoreError

MIGRATIONS: tuple[str, ...] = (
    # 1: responses, their input items and their event logs.
    """
    CREATE TABLE responses (
        id TEXT PRIMARY KEY,
        created_at REAL NOT NULL,
        status TEXT NOT NULL,
        background INTEGER NOT NULL,
        previous_response_id TEXT,
        body BLOB NOT NULL,
        expires_at REAL NOT NULL,
        logged INTEGER NOT NULL,
        done INTEGER NOT NULL DEFAULT 0,
        events_expire_at REAL
    );
    CREATE INDEX responses_by_expiry ON responses (expires_at);
    CREATE INDEX responses_by_events_expiry ON responses (events_expire_at) WHERE events_expire_at IS NOT NULL;
    CREATE INDEX responses_unfinished ON responses (done) WHERE done = 0;
    CREATE TABLE input_items (
        response_id TEXT NOT NULL REFERENCES responses (id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        id TEXT NOT NULL,
        body BLOB NOT NULL,
        PRIMARY KEY (response_id, position)
    ) WITHOUT ROWID;
    CREATE TABLE events (
        response_id TEXT NOT NULL REFERENCES responses (id) ON DELETE CASCADE,
        sequence_number INTEGER NOT NULL,
        type TEXT NOT NULL,
        data BLOB NOT NULL,
        PRIMARY KEY (response_id, sequence_number)
    ) WITHOUT ROWID;
    """,
    # 2: the replica owning an unfinished response, and a cancel asked of it.
    """
    ALTER TABLE responses ADD COLUMN owner TEXT;
    ALTER TABLE responses ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
    """,
)
"""Migration ``i`` takes the schema from version ``i`` to ``i + 1``."""

VERSION = len(MIGRATIONS)
"""The schema version this code writes."""


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the database to ``VERSION``; returns the version it had. Raises ``StoreError`` if it is newer."""
    found = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if found > VERSION:
        raise StoreError(
            f"the response database has schema version {found}, newer than this streamserve's {VERSION}; "
            "upgrade streamserve or use another --data-dir"
        )
    for version in range(found, VERSION):
        conn.executescript("BEGIN;" + MIGRATIONS[version] + f"PRAGMA user_version = {version + 1};COMMIT;")
    return found
