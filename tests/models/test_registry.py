"""ModelRegistry's decisions with a scripted loader (no model): single flight, the budget, LRU of idle models,
keep-alive, failures. The end-to-end tests (tests/e2e/test_models.py) prove the same with the real models."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field

import pytest

from streamserve.models import (
    Catalog,
    LoadFailed,
    ModelBusy,
    ModelRegistry,
    ModelSpec,
    ModelState,
    NoRoom,
    UnknownModel,
)
from streamserve.models import registry as registry_module

MB = 2**20


@dataclass
class Loaded:
    name: str
    in_flight: int = 0


@dataclass
class ScriptedLoader:
    """Sizes per model; ``gate`` holds loads until set; ``fail`` names models whose load raises."""

    sizes: dict[str, int]
    gate: threading.Event = field(default_factory=threading.Event)
    fail: set[str] = field(default_factory=set)
    loads: list[str] = field(default_factory=list)
    unloads: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.gate.set()

    def estimate(self, spec: ModelSpec) -> int:
        return self.sizes[spec.name]

    def load(self, spec: ModelSpec) -> tuple[Loaded, int]:
        self.gate.wait(10)
        self.loads.append(spec.name)
        if spec.name in self.fail:
            raise RuntimeError("bad magic")
        return Loaded(spec.name), self.sizes[spec.name] // 2

    def in_flight(self, loaded: Loaded) -> int:
        return loaded.in_flight

    def unload(self, loaded: Loaded) -> None:
        self.unloads.append(loaded.name)


def catalog(*specs: ModelSpec) -> Catalog:
    return Catalog(specs)


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_concurrent_first_requests_share_one_load_and_a_waiter_that_leaves_does_not_cancel_it() -> None:
    loader = ScriptedLoader({"a": 100 * MB})
    loader.gate.clear()

    async def main() -> None:
        registry = ModelRegistry(catalog(ModelSpec("a", "a")), loader, budget=1000 * MB, keep_alive=None)
        waiters = [asyncio.create_task(registry.acquire("a")) for _ in range(8)]
        await asyncio.sleep(0.05)
        assert registry.slots["a"].state is ModelState.LOADING
        waiters[0].cancel()  # a client hangs up while the model loads
        await asyncio.sleep(0.01)
        loader.gate.set()
        results = await asyncio.gather(*waiters[1:])
        assert len({id(r) for r in results}) == 1
        assert waiters[0].cancelled()
        assert loader.loads == ["a"]
        for _ in results:
            registry.release("a")
        assert registry.slots["a"].users == 0 and registry.slots["a"].state is ModelState.LOADED

    run(main())


def test_the_least_recently_used_idle_model_makes_room_and_a_busy_one_never_does() -> None:
    loader = ScriptedLoader({"a": 400 * MB, "b": 400 * MB, "c": 400 * MB})

    async def main() -> None:
        registry = ModelRegistry(catalog(ModelSpec("a", "a"), ModelSpec("b", "b"), ModelSpec("c", "c")), loader,
                                 budget=900 * MB, keep_alive=None)
        async with registry.use("a"):
            pass
        async with registry.use("b") as b:
            pass
        b.in_flight = 1  # b is streaming; a is idle and older
        async with registry.use("a"):
            pass  # a used again: now b is the least recently used, but busy
        async with registry.use("c"):
            pass
        assert loader.unloads == ["a"]  # not b, though b was used longer ago
        assert registry.used <= registry.budget
        assert {n for n, s in registry.slots.items() if s.state is ModelState.LOADED} == {"b", "c"}

    run(main())


def test_no_room_while_busy_is_retryable_and_a_model_that_never_fits_is_not() -> None:
    loader = ScriptedLoader({"a": 600 * MB, "b": 600 * MB, "huge": 2000 * MB})

    async def main() -> None:
        registry = ModelRegistry(catalog(ModelSpec("a", "a"), ModelSpec("b", "b"), ModelSpec("huge", "huge")),
                                 loader, budget=1000 * MB, keep_alive=None)
        a = await registry.acquire("a")  # held: a request is being prepared on it
        with pytest.raises(NoRoom) as busy:
            await registry.acquire("b")
        assert not busy.value.ever and registry.slots["b"].users == 0
        registry.release("a")
        a.in_flight = 0
        with pytest.raises(NoRoom) as never:
            await registry.acquire("huge")
        assert never.value.ever and "more than the memory budget" in str(never.value)
        async with registry.use("b"):
            pass
        assert loader.unloads == ["a"]

    run(main())


def test_a_pinned_model_is_never_unloaded_to_make_room_nor_by_keep_alive() -> None:
    loader = ScriptedLoader({"a": 600 * MB, "b": 600 * MB})

    async def main() -> None:
        registry = ModelRegistry(catalog(ModelSpec("a", "a", pinned=True), ModelSpec("b", "b")), loader,
                                 budget=1000 * MB, keep_alive=0.01)
        async with registry.use("a"):
            pass
        with pytest.raises(NoRoom) as exc:
            await registry.acquire("b")
        assert exc.value.ever  # the pinned model's share can never be freed
        await registry._expire()
        with pytest.raises(ModelBusy, match="pinned"):
            await registry.unload("a")
        assert registry.slots["a"].state is ModelState.LOADED and loader.unloads == []

    run(main())


def test_keep_alive_zero_unloads_once_idle_and_a_duration_after_that_long(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry_module, "SWEEP_INTERVAL", 0.01)
    loader = ScriptedLoader({"a": 100 * MB, "b": 100 * MB})

    async def main() -> None:
        registry = ModelRegistry(catalog(ModelSpec("a", "a"), ModelSpec("b", "b")), loader, budget=1000 * MB,
                                 keep_alive=None)
        registry.start()
        a = await registry.acquire("a")
        a.in_flight = 1
        registry.release("a", keep_alive=0.0)
        await asyncio.sleep(0.1)
        assert registry.slots["a"].state is ModelState.LOADED  # still streaming
        a.in_flight = 0
        await asyncio.sleep(0.1)
        assert registry.slots["a"].state is ModelState.UNLOADED
        async with registry.use("b", keep_alive=0.3):
            pass
        await asyncio.sleep(0.1)
        assert registry.slots["b"].state is ModelState.LOADED
        await asyncio.sleep(0.4)
        assert registry.slots["b"].state is ModelState.UNLOADED
        await registry.close()

    run(main())


def test_a_failed_load_reaches_every_waiter_and_the_next_request_tries_again() -> None:
    loader = ScriptedLoader({"bad": 100 * MB, "good": 100 * MB}, fail={"bad"})
    loader.gate.clear()

    async def main() -> None:
        registry = ModelRegistry(catalog(ModelSpec("bad", "bad"), ModelSpec("good", "good")), loader,
                                 budget=1000 * MB, keep_alive=None)
        waiters = [asyncio.create_task(registry.acquire("bad")) for _ in range(3)]
        await asyncio.sleep(0.02)
        loader.gate.set()
        results = await asyncio.gather(*waiters, return_exceptions=True)
        assert all(isinstance(r, LoadFailed) and "bad magic" in str(r) and r.model == "bad" for r in results)
        assert loader.loads == ["bad"]
        slot = registry.slots["bad"]
        assert slot.state is ModelState.UNLOADED and slot.memory == 0 and slot.users == 0
        async with registry.use("good") as good:
            assert good.name == "good"
        with pytest.raises(LoadFailed):
            await registry.acquire("bad")
        assert loader.loads == ["bad", "good", "bad"]

    run(main())


def test_memory_counted_is_the_larger_of_the_estimate_and_the_measurement() -> None:
    loader = ScriptedLoader({"a": 300 * MB})

    async def main() -> None:
        registry = ModelRegistry(catalog(ModelSpec("a", "a")), loader, budget=1000 * MB, keep_alive=None)
        async with registry.use("a"):
            pass
        assert registry.slots["a"].memory == 300 * MB  # the scripted load measures half its estimate

    run(main())


def test_unknown_names_and_explicit_unload_of_a_busy_model() -> None:
    loader = ScriptedLoader({"a": 100 * MB})

    async def main() -> None:
        registry = ModelRegistry(catalog(ModelSpec("a", "a", aliases=("gpt-4o-mini",))), loader, budget=1000 * MB,
                                 keep_alive=None)
        with pytest.raises(UnknownModel, match="Served: a, gpt-4o-mini"):
            registry.slot("nope")
        a = await registry.acquire("gpt-4o-mini")
        with pytest.raises(ModelBusy):
            await registry.unload("a")
        registry.release("a")
        slot = await registry.unload("a")
        assert slot.state is ModelState.UNLOADED and loader.unloads == ["a"] and a.name == "a"

    run(main())
