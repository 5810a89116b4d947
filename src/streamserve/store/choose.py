"""make_store: the store a ``--store`` URL names: PostgreSQL for ``postgresql://``, else SQLite in --data-dir."""

from __future__ import annotations

from pathlib import Path

from streamserve.store.base import ResponseStore, StoreError
from streamserve.store.sqlite import SQLiteStore

SCHEMES = ("postgresql://", "postgres://")


def is_shared(url: str | None) -> bool:
    """Whether ``url`` names a shared (PostgreSQL) store rather than the data directory's SQLite file."""
    return url is not None and url.startswith(SCHEMES)


def make_store(url: str | None, data_dir: Path, *, lease: float, sweep_interval: float) -> ResponseStore:
    """The store for ``url`` (None: SQLite in ``data_dir``); raises ``StoreError`` for a scheme it does not know."""
    if url is None or url.startswith("sqlite:"):
        return SQLiteStore(data_dir)
    if is_shared(url):
        from streamserve.store.postgres import PostgresStore  # psycopg is imported only when it is used

        return PostgresStore(url, lease=lease, sweep_interval=sweep_interval)
    raise StoreError(f"unknown --store {url!r}: give a postgresql://USER@HOST:PORT/DB URL, or leave it out for "
                     "SQLite in --data-dir")
