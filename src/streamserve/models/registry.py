"""ModelRegistry: which models are loaded, loading them on demand within a memory budget, unloading idle ones.

Every decision runs on the event loop; loads and unloads run in a worker thread, one at a time, so a
load's measured memory is its own. Concurrent first requests for a model share one load (single
flight), shielded so a client that hangs up does not cancel it for the others. To make room, the
least recently used *idle* model goes first: never one with requests in flight, never one loading,
never a pinned one.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from streamserve.models.catalog import Catalog, ModelSpec
from streamserve.models.errors import LoadFailed, ModelBusy, NoRoom, UnknownModel
from streamserve.models.memory import format_size

logger = logging.getLogger("streamserve.models")

T = TypeVar("T")

SWEEP_INTERVAL = 0.5
"""Seconds between checks of keep-alive deadlines."""


class ModelState(enum.Enum):
    """Where a servable model is: ``/v1/models`` reports it."""

    UNLOADED = "unloaded"
    LOADING = "loading"
    LOADED = "loaded"


class Loader(Protocol[T]):
    """What the registry needs of the layer that builds a loaded model (the API's engine, template, limits)."""

    def estimate(self, spec: ModelSpec) -> int:
        """Bytes the model will take loaded, from its file, before loading it (blocking)."""

    def load(self, spec: ModelSpec) -> tuple[T, int]:
        """Load the model and return it with the bytes it takes (blocking)."""

    def in_flight(self, loaded: T) -> int:
        """Requests the loaded model is serving or queueing (on the event loop)."""

    def unload(self, loaded: T) -> None:
        """Stop and free the loaded model (blocking)."""


@dataclass(eq=False)
class Slot(Generic[T]):
    """One servable model's place in the registry."""

    spec: ModelSpec
    state: ModelState = ModelState.UNLOADED
    loaded: T | None = None
    memory: int = 0
    load: asyncio.Future[T] | None = None
    users: int = 0
    last_used: float = field(default_factory=time.monotonic)
    keep_alive: float | None = None
    loads: int = 0
    measured: int = 0
    error: str | None = None


class ModelRegistry(Generic[T]):
    """The loaded models of one server, within ``budget`` bytes; ``keep_alive`` seconds idle unloads a model
    (None: only to make room)."""

    def __init__(self, catalog: Catalog, loader: Loader[T], *, budget: int, keep_alive: float | None) -> None:
        self.catalog = catalog
        self.loader = loader
        self.budget = budget
        self.keep_alive = keep_alive
        self.slots = {spec.name: Slot[T](spec, keep_alive=spec.keep_alive) for spec in catalog.specs}
        self._turn = asyncio.Lock()
        self._sweeper: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._closed = False

    def slot(self, name: str) -> Slot[T]:
        """The slot of the model ``name`` means, or UnknownModel."""
        spec = self.catalog.get(name)
        if spec is None:
            served = ", ".join(self.catalog.names)
            raise UnknownModel(name, f"The model '{name}' does not exist on this server. Served: {served}.")
        return self.slots[spec.name]

    @property
    def used(self) -> int:
        """Bytes counted for loaded and loading models."""
        return sum(s.memory for s in self.slots.values() if s.state is not ModelState.UNLOADED)

    def start(self) -> None:
        """Start the keep-alive sweeper and the preloads (on the event loop)."""
        self._sweeper = asyncio.create_task(self._sweep())
        for slot in self.slots.values():
            if slot.spec.preload:
                self._begin_load(slot, preload=True)

    async def preloaded(self) -> None:
        """Wait for the preloads (their failures are recorded in the slots, not raised)."""
        loads = [s.load for s in self.slots.values() if s.spec.preload and s.load is not None]
        await asyncio.gather(*loads, return_exceptions=True)

    async def acquire(self, name: str) -> T:
        """The loaded model ``name`` means, loading it first if needed; it is not unloaded until ``release``.

        Hold it until the request's sequences are submitted: from then on the engine's in-flight count
        keeps the model busy. Cancelling the wait leaves the load going for the others.
        """
        slot = self.slot(name)
        slot.users += 1
        try:
            loaded = slot.loaded if slot.state is ModelState.LOADED else await asyncio.shield(self._begin_load(slot))
        except BaseException:
            self._release(slot, None)
            raise
        assert loaded is not None
        return loaded

    def release(self, name: str, keep_alive: float | None = None) -> None:
        """End an ``acquire``; ``keep_alive`` (a request's) replaces the model's from now on."""
        self._release(self.slot(name), keep_alive)

    @asynccontextmanager
    async def use(self, name: str, keep_alive: float | None = None) -> AsyncIterator[T]:
        """``acquire`` and ``release`` around a block."""
        loaded = await self.acquire(name)
        try:
            yield loaded
        finally:
            self.release(name, keep_alive)

    def _release(self, slot: Slot[T], keep_alive: float | None) -> None:
        slot.users -= 1
        slot.last_used = time.monotonic()
        if keep_alive is not None:
            slot.keep_alive = keep_alive
        if slot.keep_alive == 0:
            self._wake_sweeper()

    async def load(self, name: str) -> Slot[T]:
        """Load the model ``name`` means now (``POST /models/load``)."""
        async with self.use(name):
            return self.slot(name)

    async def unload(self, name: str) -> Slot[T]:
        """Unload the model ``name`` means now (``POST /models/unload``); ModelBusy while it serves requests or
        if it is pinned."""
        slot = self.slot(name)
        if slot.load is not None and not slot.load.done():
            await asyncio.shield(slot.load)
        if slot.spec.pinned:
            raise ModelBusy(slot.spec.name, f"The model '{slot.spec.name}' is pinned: it stays loaded.")
        async with self._turn:
            if slot.state is ModelState.LOADED:
                if self._busy(slot):
                    raise ModelBusy(slot.spec.name, f"The model '{slot.spec.name}' is serving requests; "
                                                    "unload it when they end.")
                await self._unload(slot, "asked to")
        return slot

    async def close(self) -> None:
        """Stop the sweeper, wait for loads under way, unload every model."""
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
        await asyncio.gather(*(s.load for s in self.slots.values() if s.load is not None), return_exceptions=True)
        async with self._turn:
            for slot in self.slots.values():
                if slot.state is ModelState.LOADED:
                    await self._unload(slot, "shutting down")

    def _begin_load(self, slot: Slot[T], *, preload: bool = False) -> asyncio.Future[T]:
        if slot.load is None or slot.load.done():
            slot.load = asyncio.ensure_future(self._load(slot, preload))
            slot.load.add_done_callback(lambda f: f.cancelled() or f.exception())
        return slot.load

    async def _load(self, slot: Slot[T], preload: bool) -> T:
        async with self._turn:  # one load or unload at a time: its memory is its own, the eviction sees all
            if slot.state is ModelState.LOADED and slot.loaded is not None:
                return slot.loaded
            if self._closed:
                raise LoadFailed(slot.spec.name, f"The model '{slot.spec.name}' cannot load: the server is stopping.")
            name = slot.spec.name
            try:
                need = max(slot.measured, await asyncio.to_thread(self.loader.estimate, slot.spec))
            except Exception as exc:
                slot.error = f"The model '{name}' failed to load: {exc}"
                raise LoadFailed(name, slot.error) from exc
            if not preload:
                await self._make_room(slot, need)
            elif self.used + need > self.budget:
                logger.warning("preloading %s over the memory budget (%s of %s)", name,
                               format_size(self.used + need), format_size(self.budget))
            slot.state, slot.memory = ModelState.LOADING, need
            started = time.monotonic()
            try:
                loaded, measured = await asyncio.to_thread(self.loader.load, slot.spec)
            except Exception as exc:
                slot.state, slot.memory = ModelState.UNLOADED, 0
                slot.error = f"The model '{name}' failed to load: {exc}"
                logger.error("%s", slot.error)
                raise LoadFailed(name, slot.error) from exc
            slot.state, slot.loaded, slot.memory, slot.error = ModelState.LOADED, loaded, max(need, measured), None
            slot.measured = measured
            slot.loads += 1
            if not preload:  # measured above the estimate: idle models make up the difference
                await self._make_room(slot, 0, evict_only=True)
            slot.last_used = time.monotonic()
            logger.info("loaded %s in %.1f s: %s counted (%s measured resident); %s of %s in use", name,
                        slot.last_used - started, format_size(slot.memory), format_size(measured),
                        format_size(self.used), format_size(self.budget))
            return loaded

    async def _make_room(self, slot: Slot[T], need: int, *, evict_only: bool = False) -> None:
        name = slot.spec.name
        pinned = sum(s.memory for s in self.slots.values() if s.spec.pinned and s.state is not ModelState.UNLOADED)
        if need > self.budget - pinned:
            raise NoRoom(name, f"The model '{name}' needs {format_size(need)}, more than the memory budget "
                               f"({format_size(self.budget)}, {format_size(pinned)} of it pinned) can ever give.",
                         ever=True)
        while self.used + need > self.budget:
            idle = [s for s in self.slots.values() if s.state is ModelState.LOADED and not s.spec.pinned
                    and s is not slot and not self._busy(s)]
            if not idle and evict_only:
                logger.warning("%s measured more than estimated: %s of %s in use until a model is idle", name,
                               format_size(self.used), format_size(self.budget))
                return
            if not idle:
                raise NoRoom(name, f"The model '{name}' needs {format_size(need)} and the other loaded models "
                                   "are serving requests; retry shortly.", ever=False)
            await self._unload(min(idle, key=lambda s: s.last_used), f"to make room for {name}")

    def _busy(self, slot: Slot[T]) -> bool:
        return slot.users > 0 or (slot.loaded is not None and self.loader.in_flight(slot.loaded) > 0)

    async def _unload(self, slot: Slot[T], why: str) -> None:
        loaded, slot.loaded = slot.loaded, None
        slot.state = ModelState.UNLOADED
        freed, slot.memory = slot.memory, 0
        logger.info("unloading %s (%s): %s freed", slot.spec.name, why, format_size(freed))
        if loaded is not None:
            await asyncio.to_thread(self.loader.unload, loaded)

    def _wake_sweeper(self) -> None:
        self._wake.set()

    async def _sweep(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), SWEEP_INTERVAL)
            self._wake.clear()
            await self._expire()

    async def _expire(self) -> None:
        now = time.monotonic()
        for slot in self.slots.values():
            if slot.state is not ModelState.LOADED or slot.spec.pinned:
                continue
            if self._busy(slot):
                slot.last_used = now
                continue
            keep = slot.keep_alive if slot.keep_alive is not None else self.keep_alive
            if keep is None or now - slot.last_used < keep:
                continue
            async with self._turn:
                if slot.state is ModelState.LOADED and not self._busy(slot):
                    await self._unload(slot, f"idle for {now - slot.last_used:.0f} s")
