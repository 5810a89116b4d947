"""Run: one response being generated, recorded event by event; RunRegistry: the runs of this server.

A ``Run`` drives its ``Generation`` through the ``ResponseFormatter``: every event is serialized once,
appended to the store's log (when the response keeps one), kept in a small in-memory buffer and
handed to whoever drives it: the HTTP response of a foreground stream, or a server-side task for a
background response, which then outlives its client. Followers (resumed streams) wait on one shared
future that each new event resolves, so waiting costs nothing and nobody polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from typing import Any

import orjson

from streamserve.formats.responses import ResponseFormatter
from streamserve.generation.generation import Generation
from streamserve.pipeline.driver import Observer, drive
from streamserve.store import ResponseStore, StoredEvent

logger = logging.getLogger("streamserve.responses")

RECENT_EVENTS = 512
"""Events a run keeps in memory for followers that are nearly caught up; older ones come from the store."""



class Run:
    """One response in progress; ``events()`` drives it, ``since()`` and ``wait()`` serve followers.

    ``store`` is None for ``store: false``; ``logged`` says the store keeps this run's events.
    """

    def __init__(self, formatter: ResponseFormatter, generation: Generation, observer: Observer,
                 store: ResponseStore | None, *, logged: bool, events_ttl: float) -> None:
        self.id = formatter.meta.id
        self.formatter = formatter
        self.generation = generation
        self.background = formatter.meta.background
        self.logged = logged and store is not None
        self.last_sequence = -1
        self.finished = False
        self.task: asyncio.Task[None] | None = None
        self.on_end: Callable[[Run], None] | None = None
        self._observer = observer
        self._store = store
        self._events_ttl = events_ttl
        self._stored_status = formatter.status
        self._recent: deque[StoredEvent] = deque(maxlen=RECENT_EVENTS)
        self._wake: asyncio.Future[None] | None = None

    async def events(self) -> AsyncGenerator[StoredEvent, None]:
        """Generate the response; each event is recorded before it is yielded. Iterate it once.

        Closing the iterator early (a foreground client left, or the background task was cancelled)
        aborts the generation and leaves the response ``cancelled``; an engine failure, a shutdown or a
        moderation check that cannot complete ends it with ``response.failed``.
        """
        try:
            async with aclosing(drive(self.generation, self.formatter, self._observer)) as events:
                async for event in events:
                    stored = self._record(event)
                    if self.formatter.done and self._store is not None:
                        # The final object is committed before the client sees the last event, so a follow-up
                        # sent at once (to any replica of a shared store) finds the response ended.
                        self.end()
                        await self._store.flush()
                    yield stored
        finally:
            self.end()

    def forget(self) -> None:
        """Stop recording: the response was deleted while its foreground stream goes on."""
        self._store = None
        self.logged = False

    def since(self, after: int) -> list[StoredEvent] | None:
        """Events after sequence number ``after`` from memory, or None if memory no longer reaches back that far."""
        if after >= self.last_sequence:
            return []
        if not self._recent or self._recent[0].sequence_number > after + 1:
            return None
        return list(itertools.islice(self._recent, after + 1 - self._recent[0].sequence_number, None))

    async def wait(self, after: int) -> None:
        """Return once an event after ``after`` exists or the run has finished."""
        while self.last_sequence <= after and not self.finished:
            if self._wake is None:
                self._wake = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._wake)  # a cancelled follower must not cancel the others' future

    def _record(self, event: dict[str, Any]) -> StoredEvent:
        stored = StoredEvent(event["sequence_number"], event["type"], orjson.dumps(event))
        if self._store is not None:
            if self.logged:
                self._store.append_event(self.id, stored)
            if self.formatter.status != self._stored_status and not self.formatter.done:
                self._stored_status = self.formatter.status
                self._store.update(self.id, status=self._stored_status, body=orjson.dumps(self.formatter.snapshot()),
                                   done=False)
        self._recent.append(stored)
        self.last_sequence = stored.sequence_number
        self._notify()
        return stored

    def end(self) -> None:
        """Abort the generation if it still runs, store the final object (once), wake every follower, leave
        the registry. Synchronous: it runs while the task may be cancelled. ``events()`` calls it when it ends;
        call it directly for a run whose ``events()`` never started (a task cancelled before its first step)."""
        if self.finished:
            return
        self.generation.close()
        if not self.formatter.done:
            self.formatter.cancel(self.generation.usage())
        self.finished = True
        if self._store is not None:
            expire = time.time() + self._events_ttl if self.logged else None
            self._store.update(self.id, status=self.formatter.status, body=orjson.dumps(self.formatter.snapshot()),
                               done=True, events_expire_at=expire)
        self._notify()
        if self.on_end is not None:
            self.on_end(self)

    def _notify(self) -> None:
        if self._wake is not None:
            if not self._wake.done():
                self._wake.set_result(None)
            self._wake = None


class RunRegistry:
    """The stored runs in progress, by response id; owns the tasks of background runs."""

    def __init__(self) -> None:
        self._runs: dict[str, Run] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._runs)

    def add(self, run: Run) -> None:
        """Track a run until it ends (it removes itself)."""
        self._runs[run.id] = run
        run.on_end = self._remove

    def discard(self, run: Run) -> None:
        """Stop tracking a run (it was deleted while still streaming)."""
        self._remove(run)

    def _remove(self, run: Run) -> None:
        if self._runs.get(run.id) is run:
            del self._runs[run.id]

    def get(self, response_id: str) -> Run | None:
        """The run of a response still in progress, or None."""
        return self._runs.get(response_id)

    def start(self, run: Run) -> None:
        """Drive a background run in a server-side task that outlives the request."""
        task = asyncio.create_task(self._drive(run), name=f"response-{run.id}")
        run.task = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def cancel(self, run: Run) -> None:
        """Stop a background run and wait until its final state is recorded; idempotent."""
        if run.task is not None and not run.task.done():
            run.task.cancel()
            await asyncio.wait({run.task})
        run.end()  # a task cancelled before its first step never ran events()

    async def shutdown(self, timeout: float) -> None:
        """Let background runs record how they ended (the engine has failed them), then cancel stragglers."""
        tasks = set(self._tasks)
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
        for run in list(self._runs.values()):
            if run.background:
                run.end()

    @staticmethod
    async def _drive(run: Run) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            try:
                async with aclosing(run.events()) as events:
                    async for _ in events:
                        pass
            except Exception:
                logger.exception("background response %s failed", run.id)
