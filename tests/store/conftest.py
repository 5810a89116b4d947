"""The store contract's fixture: each test runs on SQLite and on PostgreSQL (a database of its own)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from streamserve.store import ResponseStore, SQLiteStore, StoredItem, StoredResponse
from streamserve.store.postgres import PostgresStore

T = TypeVar("T")
Opener = Callable[[], ResponseStore]


@pytest.fixture(params=["sqlite", "postgresql"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Opener:
    """Makes (unopened) stores over one database: the same data directory, or the same PostgreSQL database."""
    if request.param == "sqlite":
        return lambda: SQLiteStore(tmp_path)
    url = request.getfixturevalue("pg_cluster").new_database()
    return lambda: PostgresStore(url, lease=1.0, sweep_interval=60.0)


def run(opener: Opener, body: Callable[[Any], Awaitable[T]]) -> T:
    """Open a store, run ``body`` on it, close it."""
    async def main() -> T:
        store = opener()
        await store.open()
        try:
            return await body(store)
        finally:
            await store.close()

    return asyncio.run(main())


def response(rid: str, *, previous: str | None = None, expires_at: float = 1e12, logged: bool = True,
             status: str = "in_progress") -> StoredResponse:
    """A stored response row named ``rid`` whose body is its id."""
    return StoredResponse(id=rid, created_at=time.time(), status=status, background=False,
                          previous_response_id=previous, body=b'{"id":"%s"}' % rid.encode(),
                          expires_at=expires_at, logged=logged)


def items(rid: str, n: int) -> list[StoredItem]:
    """``n`` input items of response ``rid``."""
    return [StoredItem(f"{rid}-item{i}", b'{"n":%d}' % i) for i in range(n)]
