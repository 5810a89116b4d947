"""SQLiteStore on a real file: ordering, read-your-writes, chains, pagination, retention, locking, schema."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest

from streamserve.store import (
    BrokenChainError,
    SQLiteStore,
    StoredEvent,
    StoredItem,
    StoredResponse,
    StoreError,
    StoreLockedError,
    UnknownItemError,
    check_data_dir,
    schema,
)

T = TypeVar("T")


def run(data_dir: Path, body: Callable[[SQLiteStore], Awaitable[T]]) -> T:
    async def main() -> T:
        store = SQLiteStore(data_dir)
        await store.open()
        try:
            return await body(store)
        finally:
            await store.close()

    return asyncio.run(main())


def response(rid: str, *, previous: str | None = None, expires_at: float = 1e12, logged: bool = True,
             status: str = "in_progress") -> StoredResponse:
    return StoredResponse(id=rid, created_at=time.time(), status=status, background=False,
                          previous_response_id=previous, body=b'{"id":"%s"}' % rid.encode(),
                          expires_at=expires_at, logged=logged)


def items(rid: str, n: int) -> list[StoredItem]:
    return [StoredItem(f"{rid}-item{i}", b'{"n":%d}' % i) for i in range(n)]


def test_writes_are_visible_to_the_next_read_without_waiting(tmp_path: Path) -> None:
    async def body(store: SQLiteStore) -> None:
        store.create(response("r1"), items("r1", 2))
        for seq in range(5):
            store.append_event("r1", StoredEvent(seq, "t", b"{}"))
        store.update("r1", status="completed", body=b'{"done":1}', done=True, events_expire_at=123.0)
        got = await store.get("r1")
        assert got is not None and got.status == "completed" and got.done and got.body == b'{"done":1}'
        assert got.events_expire_at == 123.0
        assert [e.sequence_number for e in await store.events("r1", after=-1, limit=100)] == [0, 1, 2, 3, 4]
        assert await store.last_sequence("r1") == 4
        assert await store.last_sequence("nope") == -1

    run(tmp_path, body)


def test_events_page_from_a_cursor(tmp_path: Path) -> None:
    async def body(store: SQLiteStore) -> list[list[int]]:
        store.create(response("r1"), [])
        for seq in range(10):
            store.append_event("r1", StoredEvent(seq, f"t{seq}", b'{"s":%d}' % seq))
        pages, cursor = [], 2
        while page := await store.events("r1", after=cursor, limit=3):
            pages.append([e.sequence_number for e in page])
            cursor = page[-1].sequence_number
        return pages

    assert run(tmp_path, body) == [[3, 4, 5], [6, 7, 8], [9]]


def test_data_survives_reopening(tmp_path: Path) -> None:
    async def write(store: SQLiteStore) -> None:
        store.create(response("r1"), items("r1", 3))
        store.append_event("r1", StoredEvent(0, "response.created", b"{}"))

    async def read(store: SQLiteStore) -> tuple[StoredResponse | None, int]:
        return await store.get("r1"), len((await store.items("r1", after=None, limit=10, order="asc")).items)

    run(tmp_path, write)
    got, n = run(tmp_path, read)
    assert got is not None and got.id == "r1" and n == 3


def test_input_items_paginate_both_ways(tmp_path: Path) -> None:
    async def body(store: SQLiteStore) -> None:
        store.create(response("r1"), items("r1", 5))
        page = await store.items("r1", after=None, limit=2, order="asc")
        assert page is not None and [i.id for i in page.items] == ["r1-item0", "r1-item1"] and page.has_more
        page = await store.items("r1", after="r1-item1", limit=10, order="asc")
        assert page is not None and [i.id for i in page.items] == ["r1-item2", "r1-item3", "r1-item4"]
        assert not page.has_more
        page = await store.items("r1", after=None, limit=2, order="desc")
        assert page is not None and [i.id for i in page.items] == ["r1-item4", "r1-item3"] and page.has_more
        page = await store.items("r1", after="r1-item3", limit=3, order="desc")
        assert page is not None and [i.id for i in page.items] == ["r1-item2", "r1-item1", "r1-item0"]
        assert not page.has_more
        assert await store.items("nope", after=None, limit=2, order="asc") is None
        with pytest.raises(UnknownItemError):
            await store.items("r1", after="r2-item0", limit=2, order="asc")

    run(tmp_path, body)


def test_chain_is_oldest_first_and_names_a_missing_link(tmp_path: Path) -> None:
    async def body(store: SQLiteStore) -> None:
        store.create(response("a"), items("a", 1))
        store.create(response("b", previous="a"), items("b", 2))
        store.create(response("c", previous="b"), items("c", 1))
        links = await store.chain("c", max_depth=10)
        assert [link.response.id for link in links] == ["a", "b", "c"]
        assert [len(link.items) for link in links] == [1, 2, 1]
        with pytest.raises(StoreError):
            await store.chain("c", max_depth=2)
        assert await store.delete("b")
        assert not await store.delete("b")
        with pytest.raises(BrokenChainError) as info:
            await store.chain("c", max_depth=10)
        assert info.value.missing_id == "b"
        with pytest.raises(BrokenChainError):
            await store.chain("zzz", max_depth=10)

    run(tmp_path, body)


def test_delete_removes_items_and_events(tmp_path: Path) -> None:
    async def body(store: SQLiteStore) -> None:
        store.create(response("r1"), items("r1", 2))
        store.append_event("r1", StoredEvent(0, "t", b"{}"))
        assert await store.delete("r1")
        assert await store.get("r1") is None
        assert await store.events("r1", after=-1, limit=10) == []

    run(tmp_path, body)
    conn = sqlite3.connect(tmp_path / "responses.sqlite3")
    assert conn.execute("SELECT count(*) FROM input_items").fetchone()[0] == 0
    conn.close()


def test_sweep_drops_expired_responses_and_event_logs_but_never_running_ones(tmp_path: Path) -> None:
    async def body(store: SQLiteStore) -> None:
        now = time.time()
        store.create(response("old", expires_at=now - 1), [])
        store.update("old", status="completed", body=b"{}", done=True)
        store.create(response("running", expires_at=now - 1), [])
        store.create(response("logs", expires_at=now + 100), [])
        store.append_event("logs", StoredEvent(0, "t", b"{}"))
        store.update("logs", status="completed", body=b"{}", done=True, events_expire_at=now - 1)
        store.create(response("fresh", expires_at=now + 100), [])
        store.append_event("fresh", StoredEvent(0, "t", b"{}"))
        result = await store.sweep(now)
        assert (result.responses, result.event_logs) == (1, 1)
        assert await store.get("old") is None
        assert await store.get("running") is not None
        logs = await store.get("logs")
        assert logs is not None and not logs.logged and await store.events("logs", after=-1, limit=5) == []
        assert len(await store.events("fresh", after=-1, limit=5)) == 1
        assert {r.id for r in await store.unfinished()} == {"running", "fresh"}

    run(tmp_path, body)


def test_extend_keeps_a_conversation_alive(tmp_path: Path) -> None:
    async def body(store: SQLiteStore) -> None:
        now = time.time()
        store.create(response("a", expires_at=now - 5), [])
        store.update("a", status="completed", body=b"{}", done=True)
        store.extend(["a"], now + 100)
        await store.sweep(now)
        got = await store.get("a")
        assert got is not None and got.expires_at == now + 100
        store.extend(["a"], now + 1)  # never shortens
        got = await store.get("a")
        assert got is not None and got.expires_at == now + 100

    run(tmp_path, body)


def test_a_failed_write_is_isolated_from_the_others_in_its_batch(tmp_path: Path) -> None:
    async def body(store: SQLiteStore) -> None:
        store.create(response("r1"), items("r1", 1))
        store.create(response("r1"), items("r1", 3))  # duplicate id: this one fails, as a whole
        store.append_event("r1", StoredEvent(0, "t", b"{}"))
        store.append_event("ghost", StoredEvent(0, "t", b"{}"))  # no such response: foreign key
        store.append_event("r1", StoredEvent(1, "t", b"{}"))
        page = await store.items("r1", after=None, limit=10, order="asc")
        assert page is not None and len(page.items) == 1
        assert [e.sequence_number for e in await store.events("r1", after=-1, limit=10)] == [0, 1]

    run(tmp_path, body)


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

    message = run(tmp_path, body)
    assert "another streamserve" in message and str(tmp_path) in message and "--data-dir" in message
    run(tmp_path, lambda store: store.flush())  # released on close: it opens again


def test_check_data_dir_refuses_a_held_directory_and_leaves_a_free_one_free(tmp_path: Path) -> None:
    async def body(store: SQLiteStore) -> None:
        with pytest.raises(StoreLockedError, match="another streamserve"):
            check_data_dir(tmp_path)

    run(tmp_path, body)
    check_data_dir(tmp_path)  # free once the store closed
    check_data_dir(tmp_path)  # and the check itself holds nothing
    run(tmp_path, lambda store: store.flush())


def test_the_same_process_cannot_open_it_twice(tmp_path: Path) -> None:
    async def body(store: SQLiteStore) -> None:
        with pytest.raises(StoreLockedError):
            await SQLiteStore(tmp_path).open()

    run(tmp_path, body)


def test_schema_is_versioned_and_a_newer_database_is_refused(tmp_path: Path) -> None:
    run(tmp_path, lambda store: store.flush())
    conn = sqlite3.connect(tmp_path / "responses.sqlite3")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == schema.VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.execute(f"PRAGMA user_version = {schema.VERSION + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="newer"):
        run(tmp_path, lambda store: store.flush())
    run_again = SQLiteStore(tmp_path)  # the failed open released its lock
    asyncio.run(_open_close_expecting_error(run_again))


async def _open_close_expecting_error(store: SQLiteStore) -> None:
    with pytest.raises(StoreError):
        await store.open()


def test_a_burst_of_writes_commits_in_few_transactions(tmp_path: Path) -> None:
    async def body(store: SQLiteStore) -> tuple[int, int]:
        store.create(response("r1"), [])
        for seq in range(5000):
            store.append_event("r1", StoredEvent(seq, "response.output_text.delta", b'{"delta":"x"}'))
        return await store.last_sequence("r1"), store._db.transactions

    last, transactions = run(tmp_path, body)
    assert last == 4999
    assert transactions < 100  # queued writes share commits (at most 1024 operations each)
