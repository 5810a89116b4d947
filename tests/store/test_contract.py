"""The store contract, on SQLite and on PostgreSQL: ordering, read-your-writes, chains, pagination, retention."""

from __future__ import annotations

import time

import pytest

from streamserve.store import (
    BrokenChainError,
    ResponseStore,
    StoredEvent,
    StoredResponse,
    StoreError,
    UnknownItemError,
)
from tests.store.conftest import Opener, items, response, run


def test_writes_are_visible_to_the_next_read_without_waiting(opener: Opener) -> None:
    async def body(store: ResponseStore) -> None:
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

    run(opener, body)


def test_events_page_from_a_cursor(opener: Opener) -> None:
    async def body(store: ResponseStore) -> list[list[int]]:
        store.create(response("r1"), [])
        for seq in range(10):
            store.append_event("r1", StoredEvent(seq, f"t{seq}", b'{"s":%d}' % seq))
        pages, cursor = [], 2
        while page := await store.events("r1", after=cursor, limit=3):
            pages.append([e.sequence_number for e in page])
            cursor = page[-1].sequence_number
        return pages

    assert run(opener, body) == [[3, 4, 5], [6, 7, 8], [9]]


def test_data_survives_reopening(opener: Opener) -> None:
    async def write(store: ResponseStore) -> None:
        store.create(response("r1"), items("r1", 3))
        store.append_event("r1", StoredEvent(0, "response.created", b"{}"))

    async def read(store: ResponseStore) -> tuple[StoredResponse | None, int]:
        return await store.get("r1"), len((await store.items("r1", after=None, limit=10, order="asc")).items)

    run(opener, write)
    got, n = run(opener, read)
    assert got is not None and got.id == "r1" and n == 3


def test_input_items_paginate_both_ways(opener: Opener) -> None:
    async def body(store: ResponseStore) -> None:
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

    run(opener, body)


def test_chain_is_oldest_first_and_names_a_missing_link(opener: Opener) -> None:
    async def body(store: ResponseStore) -> None:
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

    run(opener, body)


def test_sweep_drops_expired_responses_and_event_logs_but_never_running_ones(opener: Opener) -> None:
    async def body(store: ResponseStore) -> None:
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

    run(opener, body)


def test_extend_keeps_a_conversation_alive(opener: Opener) -> None:
    async def body(store: ResponseStore) -> None:
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

    run(opener, body)


def test_a_failed_write_is_isolated_from_the_others_in_its_batch(opener: Opener) -> None:
    async def body(store: ResponseStore) -> None:
        store.create(response("r1"), items("r1", 1))
        store.create(response("r1"), items("r1", 3))  # duplicate id: this one fails, as a whole
        store.append_event("r1", StoredEvent(0, "t", b"{}"))
        store.append_event("ghost", StoredEvent(0, "t", b"{}"))  # no such response: foreign key
        store.append_event("r1", StoredEvent(1, "t", b"{}"))
        page = await store.items("r1", after=None, limit=10, order="asc")
        assert page is not None and len(page.items) == 1
        assert [e.sequence_number for e in await store.events("r1", after=-1, limit=10)] == [0, 1]

    run(opener, body)


def test_a_burst_of_writes_commits_in_few_transactions(opener: Opener) -> None:
    async def body(store: ResponseStore) -> tuple[int, int]:
        store.create(response("r1"), [])
        for seq in range(5000):
            store.append_event("r1", StoredEvent(seq, "response.output_text.delta", b'{"delta":"x"}'))
        return await store.last_sequence("r1"), store._db.transactions  # type: ignore[attr-defined]

    last, transactions = run(opener, body)
    assert last == 4999
    assert transactions < 100  # queued writes share commits (at most 1024 operations each)
