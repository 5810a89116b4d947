"""SQLiteStore on a real file: ordering, read-your-writes, chains, pagination, retention, locking, schema."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from streamserve.store import (
    SQLiteStore,
    StoredEvent,
    StoreError,
    StoreLockedError,
    check_data_dir,
    schema,
)
from tests.store.conftest import items, response, run


def test_delete_removes_items_and_events(tmp_path: Path) -> None:
    async def body(store: SQLiteStore) -> None:
        store.create(response("r1"), items("r1", 2))
        store.append_event("r1", StoredEvent(0, "t", b"{}"))
        assert await store.delete("r1")
        assert await store.get("r1") is None
        assert await store.events("r1", after=-1, limit=10) == []

    run(lambda: SQLiteStore(tmp_path), body)
    conn = sqlite3.connect(tmp_path / "responses.sqlite3")
    assert conn.execute("SELECT count(*) FROM input_items").fetchone()[0] == 0
    conn.close()


def test_a_second_process_cannot_open_the_same_data_dir(tmp_path: Path) -> None:
    async def body(store: SQLiteStore) -> str:
        script = (
            "import asyncio, sys\n"
            "from pathlib import Path\n"
            "from streamserve.store import SQLiteStore, StoreLockedError\n"
            "try:\n"
            f"    asyncio.run(SQLiteStore(Path({str(tmp_path)!r})).open())\n"
            "except StoreLockedError as exc:\n"
            "    print(exc); sys.exit(3)\n"
        )
        proc = await asyncio.to_thread(subprocess.run, [sys.executable, "-c", script], capture_output=True,
                                       text=True, timeout=60)
        assert proc.returncode == 3, proc.stderr
        return proc.stdout

    message = run(lambda: SQLiteStore(tmp_path), body)
    assert "another streamserve" in message and str(tmp_path) in message and "--data-dir" in message
    run(lambda: SQLiteStore(tmp_path), lambda store: store.flush())  # released on close: it opens again


def test_check_data_dir_refuses_a_held_directory_and_leaves_a_free_one_free(tmp_path: Path) -> None:
    async def body(store: SQLiteStore) -> None:
        with pytest.raises(StoreLockedError, match="another streamserve"):
            check_data_dir(tmp_path)

    run(lambda: SQLiteStore(tmp_path), body)
    check_data_dir(tmp_path)  # free once the store closed
    check_data_dir(tmp_path)  # and the check itself holds nothing
    run(lambda: SQLiteStore(tmp_path), lambda store: store.flush())


def test_the_same_process_cannot_open_it_twice(tmp_path: Path) -> None:
    async def body(store: SQLiteStore) -> None:
        with pytest.raises(StoreLockedError):
            await SQLiteStore(tmp_path).open()

    run(lambda: SQLiteStore(tmp_path), body)


def test_schema_is_versioned_and_a_newer_database_is_refused(tmp_path: Path) -> None:
    run(lambda: SQLiteStore(tmp_path), lambda store: store.flush())
    conn = sqlite3.connect(tmp_path / "responses.sqlite3")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == schema.VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.execute(f"PRAGMA user_version = {schema.VERSION + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="newer"):
        run(lambda: SQLiteStore(tmp_path), lambda store: store.flush())
    run_again = SQLiteStore(tmp_path)  # the failed open released its lock
    asyncio.run(_open_close_expecting_error(run_again))


async def _open_close_expecting_error(store: SQLiteStore) -> None:
    with pytest.raises(StoreError):
        await store.open()

