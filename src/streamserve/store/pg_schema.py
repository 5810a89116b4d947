"""The PostgreSQL schema, versioned in ``streamserve_schema``: each migration runs once, in order.

Replicas starting together migrate under one advisory lock, so exactly one of them runs each
migration. A database written by a newer streamserve is refused rather than guessed at.
"""

from __future__ import annotations

import psycopg

from streamserve.store.base import StoreError

MIGRATE_LOCK = 0x5757_0001
"""The advisory lock key held while the schema is checked and migrated."""

SWEEP_LOCK = 0x5757_0002
"""The advisory lock key held by the one replica running a retention sweep."""

MIGRATIONS: tuple[str, ...] = (
    # 1: responses (owned by a replica while unfinished), input items, event logs, replicas' leases.
    """
    CREATE TABLE responses (
        id TEXT PRIMARY KEY,
        created_at DOUBLE PRECISION NOT NULL,
        status TEXT NOT NULL,
        background BOOLEAN NOT NULL,
        previous_response_id TEXT,
        body BYTEA NOT NULL,
        expires_at DOUBLE PRECISION NOT NULL,
        logged BOOLEAN NOT NULL,
        done BOOLEAN NOT NULL DEFAULT FALSE,
        events_expire_at DOUBLE PRECISION,
        owner TEXT,
        cancel_requested BOOLEAN NOT NULL DEFAULT FALSE
    );
    CREATE INDEX responses_by_expiry ON responses (expires_at) WHERE done;
    CREATE INDEX responses_by_events_expiry ON responses (events_expire_at) WHERE events_expire_at IS NOT NULL;
    CREATE INDEX responses_unfinished ON responses (owner) WHERE NOT done;
    CREATE TABLE input_items (
        response_id TEXT NOT NULL REFERENCES responses (id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        id TEXT NOT NULL,
        body BYTEA NOT NULL,
        PRIMARY KEY (response_id, position)
    );
    CREATE TABLE events (
        response_id TEXT NOT NULL REFERENCES responses (id) ON DELETE CASCADE,
        sequence_number INTEGER NOT NULL,
        type TEXT NOT NULL,
        data BYTEA NOT NULL,
        PRIMARY KEY (response_id, sequence_number)
    );
    CREATE TABLE replicas (
        id TEXT PRIMARY KEY,
        started_at DOUBLE PRECISION NOT NULL,
        expires_at DOUBLE PRECISION NOT NULL
    );
    CREATE TABLE store_meta (
        key TEXT PRIMARY KEY,
        value DOUBLE PRECISION NOT NULL
    );
    INSERT INTO store_meta (key, value) VALUES ('swept_at', 0);
    """,
)
"""Migration ``i`` takes the schema from version ``i`` to ``i + 1``."""

VERSION = len(MIGRATIONS)
"""The schema version this code writes."""


def migrate(conn: psycopg.Connection) -> int:
    """Bring the database to ``VERSION`` under the migration lock; returns the version it had.

    Raises ``StoreError`` if the database is newer than this code.
    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATE_LOCK,))
        conn.execute("CREATE TABLE IF NOT EXISTS streamserve_schema (version INTEGER NOT NULL)")
        row = conn.execute("SELECT version FROM streamserve_schema").fetchone()
        if row is None:
            conn.execute("INSERT INTO streamserve_schema (version) VALUES (0)")
            found = 0
        else:
            found = int(row[0])
        if found > VERSION:
            raise StoreError(
                f"the response database has schema version {found}, newer than this streamserve's {VERSION}; "
                "upgrade streamserve or use another database"
            )
        for version in range(found, VERSION):
            conn.execute(MIGRATIONS[version].encode())
            conn.execute("UPDATE streamserve_schema SET version = %s", (version + 1,))
    return found
