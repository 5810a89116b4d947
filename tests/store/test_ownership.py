"""Ownership, orphans, watches and cancels: the contract on both stores, and PostgreSQL across replicas."""

from __future__ import annotations

import asyncio
import time

import psycopg
import pytest

from streamserve.store import Ending, ResponseStore, StoredEvent, StoredResponse, StoreError
from streamserve.store.pg_schema import VERSION
from streamserve.store.postgres import PostgresStore
from tests.pgcluster import Cluster
from tests.store.conftest import Opener, run


def running(rid: str) -> StoredResponse:
    return StoredResponse(id=rid, created_at=time.time(), status="in_progress", background=True,
                          previous_response_id=None, body=b"{}", expires_at=1e12, logged=True)


def lost(record: StoredResponse, events: list[StoredEvent]) -> Ending:
    seq = len(events)
    return Ending("failed", b'{"status":"failed","kept":%d}' % seq,
                  StoredEvent(seq, "response.failed", b"{}"), events_expire_at=time.time() + 60)


def test_a_restarted_store_ends_what_the_last_one_left_running_once(opener: Opener) -> None:
    async def first(store: ResponseStore) -> None:
        store.create(running("r1"), [])
        store.append_event("r1", StoredEvent(0, "response.created", b"{}"))
        store.create(running("r2"), [])
        store.update("r2", status="completed", body=b"{}", done=True)
        assert await store.end_orphans(lost) == []  # its own running responses are not orphans

    async def second(store: ResponseStore) -> None:
        if isinstance(store, PostgresStore):
            await asyncio.sleep(1.2)  # the first replica gave its lease up at close; expiry is the bound
        assert await store.end_orphans(lost) == ["r1"]
        assert await store.end_orphans(lost) == []
        got = await store.get("r1")
        assert got is not None and got.done and got.status == "failed" and got.body.endswith(b'"kept":1}')
        assert [e.type for e in await store.events("r1", after=-1, limit=10)] == ["response.created",
                                                                                 "response.failed"]

    run(opener, first)
    run(opener, second)


def test_a_watch_wakes_on_writes_and_times_out_without(opener: Opener) -> None:
    async def body(store: ResponseStore) -> None:
        store.create(running("r1"), [])
        await store.flush()
        await asyncio.sleep(0.3)  # the create's own notification comes and goes
        with store.watch("r1") as watch:
            assert not await watch.wait(0.2)
            store.append_event("r1", StoredEvent(0, "t", b"{}"))
            assert await watch.wait(5)
            store.update("r1", status="completed", body=b"{}", done=True)
            assert await watch.wait(5)

    run(opener, body)


def test_a_cancel_reaches_the_handler(opener: Opener) -> None:
    async def body(store: ResponseStore) -> list[str]:
        asked: list[str] = []
        store.on_cancel(asked.append)
        store.create(running("r1"), [])
        store.request_cancel("r1")
        for _ in range(50):
            if asked:
                break
            await asyncio.sleep(0.1)
        return asked

    assert run(opener, body) == ["r1"]


def two_replicas(cluster: Cluster, lease: float = 1.0) -> tuple[PostgresStore, PostgresStore]:
    url = cluster.new_database()
    return PostgresStore(url, lease=lease), PostgresStore(url, lease=lease)


def test_a_stream_on_one_replica_is_tailed_live_from_another(pg_cluster: Cluster) -> None:
    async def main() -> list[int]:
        a, b = two_replicas(pg_cluster)
        await a.open()
        await b.open()
        a.create(running("r1"), [])
        seen: list[int] = []

        async def tail() -> None:
            cursor = -1
            with b.watch("r1") as watch:
                while True:
                    record = await b.get("r1")
                    page = await b.events("r1", after=cursor, limit=3)
                    seen.extend(e.sequence_number for e in page)
                    if page:
                        cursor = page[-1].sequence_number
                        continue
                    if record is not None and record.done:
                        return
                    assert await watch.wait(5), "no wake-up for a committed event"

        follower = asyncio.create_task(tail())
        for seq in range(20):
            a.append_event("r1", StoredEvent(seq, "t", b"{}"))
            if seq % 4 == 0:
                await asyncio.sleep(0.02)
        a.update("r1", status="completed", body=b"{}", done=True)
        await asyncio.wait_for(follower, 10)
        await a.close()
        await b.close()
        return seen

    assert asyncio.run(main()) == list(range(20))


def test_a_dead_replicas_orphans_are_ended_by_another_within_the_lease_and_fenced(pg_cluster: Cluster) -> None:
    async def main() -> None:
        a, b = two_replicas(pg_cluster, lease=1.0)
        await a.open()
        await b.open()
        a.create(running("r1"), [])
        a.append_event("r1", StoredEvent(0, "response.created", b"{}"))
        await a.flush()
        assert a._renewer is not None
        a._renewer.cancel()  # a stalls: its lease is no longer renewed
        assert await b.end_orphans(lost) == []  # not before the lease expires
        start = time.monotonic()
        ended: list[str] = []
        while not ended and time.monotonic() - start < 5:
            await asyncio.sleep(0.1)
            ended = await b.end_orphans(lost)
        assert ended == ["r1"] and time.monotonic() - start <= 1.5
        a.append_event("r1", StoredEvent(1, "response.output_text.delta", b"{}"))  # the stalled owner wakes up
        a.append_event("r1", StoredEvent(2, "response.completed", b"{}"))
        a.update("r1", status="completed", body=b"{}", done=True)
        await a.flush()
        got = await b.get("r1")
        assert got is not None and got.status == "failed"
        assert [e.type for e in await b.events("r1", after=-1, limit=10)] == ["response.created", "response.failed"]
        await a.close()
        await b.close()

    asyncio.run(main())


def test_the_retention_sweep_runs_once_across_replicas(pg_cluster: Cluster) -> None:
    async def main() -> tuple[int, int]:
        a, b = two_replicas(pg_cluster)
        await a.open()
        await b.open()
        now = time.time()
        for rid in ("x", "y"):
            a.create(running(rid), [])
            a.update(rid, status="completed", body=b"{}", done=True)
        await a.flush()
        first, second = await asyncio.gather(a.sweep(now + 2e12), b.sweep(now + 2e12))
        a.create(running("z"), [])
        a.update("z", status="completed", body=b"{}", done=True)
        await a.flush()
        again = await b.sweep(now + 2e12)  # within the sweep interval: nobody sweeps
        assert again.responses == 0 and await b.get("z") is not None
        await a.close()
        await b.close()
        return first.responses, second.responses

    assert sorted(asyncio.run(main())) == [0, 2]


def test_replicas_migrate_together_and_a_newer_schema_is_refused(pg_cluster: Cluster) -> None:
    url = pg_cluster.new_database()

    async def main() -> None:
        stores = [PostgresStore(url) for _ in range(3)]
        await asyncio.gather(*(store.open() for store in stores))
        assert sorted(store.migrated_from or 0 for store in stores) == [0, VERSION, VERSION]
        await asyncio.gather(*(store.close() for store in stores))
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("UPDATE streamserve_schema SET version = %s", (VERSION + 1,))
        with pytest.raises(StoreError, match="newer"):
            await PostgresStore(url).open()

    asyncio.run(main())


def test_an_unreachable_database_is_a_store_error(pg_cluster: Cluster) -> None:
    with pytest.raises(StoreError, match="cannot"):
        asyncio.run(PostgresStore(pg_cluster.url("no_such_database")).open())
