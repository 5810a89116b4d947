"""merge: arrival order, error propagation, and cleanup of every source on early exit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator

import pytest

from streamserve.generation.merge import merge


async def from_queue(queue: asyncio.Queue[str | None]) -> AsyncGenerator[str, None]:
    """Yield what the test puts on ``queue`` until it puts None."""
    while (item := await queue.get()) is not None:
        yield item


async def counted(name: str, n: int) -> AsyncGenerator[str, None]:
    """``n`` items, yielding to the loop before each."""
    for i in range(n):
        await asyncio.sleep(0)
        yield f"{name}{i}"


async def blocked(name: str, log: list[str], *, first: int = 1) -> AsyncGenerator[str, None]:
    """Yield ``first`` items, then wait forever; record cancellation and the finally block."""
    try:
        for i in range(first):
            yield f"{name}{i}"
        await asyncio.Event().wait()
        yield "never"
    except asyncio.CancelledError:
        log.append(f"{name} cancelled")
        raise
    finally:
        log.append(f"{name} finally")


class Waiter:
    """A bare async iterator with no aclose(): only its in-flight task can be cancelled."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    def __aiter__(self) -> Waiter:
        return self

    async def __anext__(self) -> str:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.log.append("waiter cancelled")
            raise
        return "never"


def test_items_come_out_in_arrival_order_as_soon_as_they_arrive() -> None:
    async def main() -> None:
        queues: list[asyncio.Queue[str | None]] = [asyncio.Queue() for _ in range(3)]
        merged = merge([from_queue(q) for q in queues])
        script = [(0, "a1"), (1, "b1"), (1, "b2"), (2, "c1"), (0, "a2"), (2, "c2"), (1, "b3")]
        for index, item in script:
            queues[index].put_nowait(item)
            assert await asyncio.wait_for(anext(merged), 2) == item
        for queue in queues:
            queue.put_nowait(None)
        assert [item async for item in merged] == []

    asyncio.run(main())


def test_all_items_delivered_interleaved_with_source_order_kept() -> None:
    async def main() -> list[str]:
        return [item async for item in merge([counted("a", 3), counted("b", 0), counted("c", 5)])]

    out = asyncio.run(main())
    assert sorted(out) == sorted(["a0", "a1", "a2", "c0", "c1", "c2", "c3", "c4"])
    assert [x for x in out if x[0] == "a"] == ["a0", "a1", "a2"]
    assert [x for x in out if x[0] == "c"] == ["c0", "c1", "c2", "c3", "c4"]
    assert out.index("c0") < out.index("a2"), "sources must interleave, not run one after another"


def test_no_sources_yields_nothing() -> None:
    async def main() -> list[int]:
        sources: list[AsyncIterator[int]] = []
        return [item async for item in merge(sources)]

    assert asyncio.run(main()) == []


def test_single_source_is_iterated_without_tasks() -> None:
    async def task_counts() -> AsyncGenerator[int, None]:
        for _ in range(3):
            yield len(asyncio.all_tasks())

    async def main() -> tuple[list[int], list[int]]:
        one = [item async for item in merge([task_counts()])]
        two = [item async for item in merge([task_counts(), task_counts()])]
        return one, two

    one, two = asyncio.run(main())
    assert one == [1, 1, 1]
    assert all(count > 1 for count in two), "the multi-source path does use tasks"


def test_source_error_propagates_after_others_are_cancelled() -> None:
    async def failing() -> AsyncGenerator[str, None]:
        yield "ok"
        await asyncio.sleep(0)
        raise ValueError("boom")

    async def main() -> tuple[list[str], list[str]]:
        log: list[str] = []
        seen: list[str] = []
        with pytest.raises(ValueError, match="boom"):
            sources: list[AsyncIterator[str]] = [failing(), blocked("b", log), Waiter(log)]
            async for item in merge(sources):
                seen.append(item)
        assert asyncio.all_tasks() == {asyncio.current_task()}
        return seen, log

    seen, log = asyncio.run(main())
    assert sorted(seen) == ["b0", "ok"]
    assert sorted(log) == ["b cancelled", "b finally", "waiter cancelled"]


def test_error_from_single_source_propagates() -> None:
    async def failing() -> AsyncGenerator[int, None]:
        yield 1
        raise KeyError("gone")

    async def main() -> list[int]:
        seen: list[int] = []
        with pytest.raises(KeyError):
            async for item in merge([failing()]):
                seen.append(item)
        return seen

    assert asyncio.run(main()) == [1]


def test_aclose_cancels_and_closes_every_source() -> None:
    async def main() -> list[str]:
        log: list[str] = []
        sources: list[AsyncIterator[str]] = [blocked("a", log, first=2), blocked("b", log), Waiter(log)]
        merged = merge(sources)
        got = [await anext(merged) for _ in range(3)]
        assert sorted(got) == ["a0", "a1", "b0"]
        assert log == []
        await asyncio.wait_for(merged.aclose(), 5)
        assert asyncio.all_tasks() == {asyncio.current_task()}
        assert {"a finally", "b finally"} <= set(log)
        return log

    log = asyncio.run(main())
    assert {"a finally", "b cancelled", "b finally", "waiter cancelled"} <= set(log)


def test_aclose_closes_a_source_that_already_produced_its_next_item() -> None:
    async def main() -> list[str]:
        log: list[str] = []
        sources = [blocked("a", log, first=5), blocked("b", log)]
        merged = merge(sources)
        await anext(merged)
        for _ in range(5):
            await asyncio.sleep(0)
        await merged.aclose()
        assert "a finally" in log and "b finally" in log
        return log

    log = asyncio.run(main())
    assert "a finally" in log and "b finally" in log
    assert "a cancelled" not in log, "a was idle at a yield: closed, not cancelled"


def test_cancelling_the_consumer_runs_every_finally() -> None:
    async def main() -> list[str]:
        log: list[str] = []
        received = asyncio.Event()

        async def consume() -> None:
            async for _ in merge([blocked("a", log), blocked("b", log)]):
                received.set()

        task = asyncio.create_task(consume())
        await received.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert asyncio.all_tasks() == {asyncio.current_task()}
        return log

    log = asyncio.run(main())
    assert "a finally" in log and "b finally" in log


def test_single_source_closed_on_aclose_and_on_cancel() -> None:
    async def main() -> tuple[list[str], list[str]]:
        closed: list[str] = []
        source = blocked("a", closed, first=3)
        merged = merge([source])
        assert await anext(merged) == "a0"
        await merged.aclose()
        assert closed == ["a finally"], "closed by merge, not later by garbage collection"

        cancelled: list[str] = []
        received = asyncio.Event()

        async def consume() -> None:
            async for _ in merge([blocked("b", cancelled)]):
                received.set()

        task = asyncio.create_task(consume())
        await received.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return closed, cancelled

    closed, cancelled = asyncio.run(main())
    assert closed == ["a finally"]
    assert cancelled == ["b cancelled", "b finally"]


def test_sources_are_read_at_most_one_item_ahead() -> None:
    produced = {"a": 0, "b": 0}

    async def endless(name: str) -> AsyncGenerator[str, None]:
        while True:
            produced[name] += 1
            yield name

    async def main() -> None:
        merged = merge([endless("a"), endless("b")])
        for _ in range(10):
            await anext(merged)
        for _ in range(20):
            await asyncio.sleep(0)
        assert sum(produced.values()) <= 10 + 2
        await merged.aclose()

    asyncio.run(main())
    assert produced["a"] > 0 and produced["b"] > 0
