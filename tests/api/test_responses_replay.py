"""Run + follow() with a scripted generation over a real SQLite store: resumed streams get every event after
their cursor exactly once, whether it comes from the store's pages, the run's memory or live, and
cancelling a run records it as cancelled. Buffers and pages are made tiny so every path is taken."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from streamserve.api.responses import replay, runs
from streamserve.api.responses.replay import follow
from streamserve.api.responses.runs import Run, RunRegistry
from streamserve.formats.responses import ResponseFormatter, ResponseMeta
from streamserve.generation.events import Event, Finish, TextDelta, Usage
from streamserve.store import SQLiteStore, StoredResponse

FIELDS = {"instructions": None, "metadata": {}}


class ScriptedGeneration:
    """Yields one delta per ``step`` seconds (or when ``gate`` lets it), then a length finish and usage."""

    def __init__(self, n: int, *, step: float = 0.0, gate: asyncio.Event | None = None) -> None:
        self.n, self.step, self.gate = n, step, gate
        self.sent = 0
        self.closed = False

    async def events(self) -> AsyncIterator[Event]:
        for i in range(self.n):
            if self.gate is not None:
                await self.gate.wait()
            await asyncio.sleep(self.step)
            self.sent += 1
            yield TextDelta(0, f"{i},")
        yield Finish(0, "length")
        yield self.usage()

    def close(self) -> None:
        self.closed = True

    def usage(self) -> Usage:
        return Usage(3, self.sent)


class Quiet:
    def on_text(self) -> None:
        pass

    def on_end(self, outcome: str, usage: Usage | None) -> None:
        pass


async def open_store(tmp_path: Path) -> SQLiteStore:
    store = SQLiteStore(tmp_path)
    await store.open()
    return store


def make_run(store: SQLiteStore, generation: ScriptedGeneration, rid: str = "resp_1") -> Run:
    formatter = ResponseFormatter(ResponseMeta(rid, 0, "m", True, FIELDS))
    run = Run(formatter, generation, Quiet(), store, logged=True, events_ttl=60.0)  # type: ignore[arg-type]
    store.create(StoredResponse(rid, 0.0, "queued", True, None, b"{}", 1e12, True), [])
    return run


async def collect(store: SQLiteStore, registry: RunRegistry, rid: str, after: int, *,
                  slow: float = 0.0) -> list[int]:
    seqs = []
    async for event in follow(store, registry, rid, after):
        assert event is not None
        seqs.append(event.sequence_number)
        if slow:
            await asyncio.sleep(slow * random.random())
    return seqs


@pytest.fixture(autouse=True)
def tiny_buffers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runs, "RECENT_EVENTS", 6)
    monkeypatch.setattr(replay, "PAGE_EVENTS", 4)


def test_followers_from_any_cursor_get_each_event_once(tmp_path: Path) -> None:
    async def main() -> None:
        store = await open_store(tmp_path)
        registry = RunRegistry()
        run = make_run(store, ScriptedGeneration(120, step=0.002))
        live_reads = []
        read = store.events

        async def counted(response_id: str, *, after: int, limit: int) -> Any:
            live_reads.append(not run.finished)
            return await read(response_id, after=after, limit=limit)

        store.events = counted  # type: ignore[method-assign]
        registry.add(run)
        registry.start(run)
        early = asyncio.create_task(collect(store, registry, run.id, -1))
        slow = asyncio.create_task(collect(store, registry, run.id, -1, slow=0.01))  # falls behind memory
        while run.last_sequence < 60:
            await asyncio.sleep(0.005)
        middle = [asyncio.create_task(collect(store, registry, run.id, cursor)) for cursor in (0, 7, 33, 59)]
        results = await asyncio.gather(early, slow, *middle)
        assert run.finished and registry.get(run.id) is None
        assert any(live_reads)  # followers behind the run's memory were served from the store's pages
        late = [await collect(store, registry, run.id, cursor) for cursor in (-1, 50, run.last_sequence)]
        stored = [e.sequence_number for e in await store.events(run.id, after=-1, limit=10_000)]
        assert stored == list(range(run.last_sequence + 1))
        for cursor, seqs in zip((-1, -1, 0, 7, 33, 59, -1, 50, run.last_sequence), [*results, *late], strict=True):
            assert seqs == list(range(cursor + 1, run.last_sequence + 1)), cursor
        last = orjson.loads((await store.events(run.id, after=run.last_sequence - 1, limit=1))[0].data)
        assert last["type"] == "response.incomplete"
        record = await store.get(run.id)
        assert record is not None and record.done and record.status == "incomplete"
        assert record.events_expire_at is not None
        await store.close()

    asyncio.run(main())


def test_a_cancelled_follower_leaves_the_others_and_the_run_alone(tmp_path: Path) -> None:
    async def main() -> None:
        store = await open_store(tmp_path)
        registry = RunRegistry()
        gate = asyncio.Event()
        run = make_run(store, ScriptedGeneration(10, gate=gate))
        registry.add(run)
        registry.start(run)
        waiting = [asyncio.create_task(collect(store, registry, run.id, -1)) for _ in range(3)]
        await asyncio.sleep(0.05)
        waiting[0].cancel()
        gate.set()
        results = await asyncio.gather(*waiting[1:])
        assert all(seqs == list(range(run.last_sequence + 1)) for seqs in results)
        assert run.formatter.status == "incomplete"
        await store.close()

    asyncio.run(main())


def test_cancelling_a_background_run_aborts_it_and_records_cancelled(tmp_path: Path) -> None:
    async def main() -> None:
        store = await open_store(tmp_path)
        registry = RunRegistry()
        generation = ScriptedGeneration(10_000, step=0.001)
        run = make_run(store, generation)
        registry.add(run)
        registry.start(run)
        follower = asyncio.create_task(collect(store, registry, run.id, -1))
        while generation.sent < 20:
            await asyncio.sleep(0.005)
        await registry.cancel(run)
        await registry.cancel(run)  # idempotent
        seqs = await follower
        assert generation.closed and run.finished and seqs == list(range(run.last_sequence + 1))
        record = await store.get(run.id)
        assert record is not None and record.status == "cancelled" and record.done
        body: dict[str, Any] = orjson.loads(record.body)
        assert body["output"][0]["status"] == "incomplete"
        assert body["usage"]["output_tokens"] == generation.sent
        assert generation.sent < 10_000
        await store.close()

    asyncio.run(main())


def test_a_waiting_follower_gets_keepalives_until_the_first_event(tmp_path: Path) -> None:
    async def main() -> None:
        store = await open_store(tmp_path)
        registry = RunRegistry()
        gate = asyncio.Event()
        run = make_run(store, ScriptedGeneration(1, gate=gate))
        registry.add(run)
        registry.start(run)
        got: list[Any] = []
        async for event in follow(store, registry, run.id, 1, keepalive_s=0.02):  # after created + queued
            got.append(event)
            if sum(e is None for e in got) == 3:
                gate.set()
        assert got[:3] == [None, None, None]
        assert [e.sequence_number for e in got if e is not None] == list(range(2, run.last_sequence + 1))
        await store.close()

    asyncio.run(main())


def test_cancelling_before_the_task_ever_ran_still_records_the_end(tmp_path: Path) -> None:
    async def main() -> None:
        store = await open_store(tmp_path)
        registry = RunRegistry()
        generation = ScriptedGeneration(10)
        run = make_run(store, generation)
        registry.add(run)
        registry.start(run)
        await registry.cancel(run)  # no await in between: the task is cancelled before its first step
        assert run.finished and generation.closed and registry.get(run.id) is None
        record = await store.get(run.id)
        assert record is not None and record.done and record.status == "cancelled"
        assert await collect(store, registry, run.id, -1) == []
        await store.close()

    asyncio.run(main())
