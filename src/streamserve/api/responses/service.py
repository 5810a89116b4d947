"""ResponsesService: what the ``/v1/responses`` routes do, over the store and the registry of runs.

Create validates everything and admits the generation (429 when the engine is full) before a byte
is sent, then streams, collects, or hands the run to a background task. It knows nothing of HTTP:
it returns objects, raw stored JSON and event iterators, which the routes turn into responses. Stored responses, their
input items and their event logs go to the store as they happen. At startup, responses a previous
process left running are marked failed; a periodic sweep deletes what has expired.

On a shared store (PostgreSQL, several replicas) any replica answers for any response: a running one
is followed live from the store, a cancel goes to the replica that runs it, and every replica ends, every
``orphan_interval`` seconds, the responses of replicas that stopped renewing their lease.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from streamserve.api.errors import InternalServerError, InvalidRequestError, NotFoundError
from streamserve.api.protocol import ResponseCreateRequest
from streamserve.api.responses import inputs, request
from streamserve.api.responses.orphans import LOST_MESSAGE, RESTART_MESSAGE, ending
from streamserve.api.responses.replay import follow
from streamserve.api.responses.runs import Run, RunRegistry
from streamserve.api.state import LoadedModel
from streamserve.generation.generation import Generation, start_generation
from streamserve.pipeline.driver import Observer
from streamserve.store import (
    BrokenChainError,
    ChainLink,
    ResponseStore,
    StoredEvent,
    StoredItem,
    StoredResponse,
    StoreError,
    UnknownItemError,
)

logger = logging.getLogger("streamserve.responses")

MAX_CHAIN = 1000
"""Responses a ``previous_response_id`` chain may hold."""

REMOTE_CANCEL_WAIT_S = 10.0
"""How long a cancel of a response running on another replica waits for that replica to record it."""


@dataclass(frozen=True, slots=True)
class Created:
    """How a created response is answered: its ``events`` streamed, its ``run`` drained, or its ``body`` now."""

    events: AsyncGenerator[StoredEvent | None, None] | None = None
    run: Run | None = None
    body: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Retention:
    """How long stored responses (``ttl``) and their event logs after they end (``events_ttl``) are kept.

    ``orphan_interval`` (shared stores only) is how often this replica looks for other replicas' orphans.
    """

    ttl: float
    events_ttl: float
    sweep_interval: float
    orphan_interval: float | None = None


class ResponsesService:
    """The Responses API over one store; one per server."""

    def __init__(self, store: ResponseStore, retention: Retention) -> None:
        self.store = store
        self.retention = retention
        self.runs = RunRegistry()
        self._tasks: list[asyncio.Task[None]] = []
        self._cancels: set[asyncio.Task[None]] = set()
        shared = retention.orphan_interval is not None
        self._end_orphan = ending(LOST_MESSAGE if shared else RESTART_MESSAGE, retention.events_ttl)

    async def start(self) -> None:
        """Mark what a previous process left running as failed, then start the retention sweeps (and, on a
        shared store, the search for other replicas' orphans)."""
        self.store.on_cancel(self._cancel_asked)
        await self.recover()
        self._tasks.append(asyncio.create_task(self._sweep_forever(), name="responses-sweeper"))
        if self.retention.orphan_interval is not None:
            self._tasks.append(asyncio.create_task(self._recover_forever(self.retention.orphan_interval),
                                                   name="responses-orphans"))

    async def stop(self, timeout: float = 10.0) -> None:
        """Let background runs record their end (the engine has failed them), stop sweeping, flush the store."""
        await self.runs.shutdown(timeout)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.store.flush()

    async def create(self, body: ResponseCreateRequest, loaded: LoadedModel,
                     observer: Callable[[Generation], Observer]) -> Created:
        """``POST /v1/responses``: admit the generation (429 when the engine is full), then say how to answer.

        ``observer`` makes the metrics observer of the generation. A stream (foreground, or a background
        one's followed events) is ``Created.events``; a foreground response returned whole is ``Created.run``,
        to drain; a background one returned queued is ``Created.body``.
        """
        chain = await self._chain(body.previous_response_id)
        items = inputs.parse_input(body.input)
        spec, formatter = await request.generation(body, loaded, chain, items)
        generation = start_generation(loaded.engine, spec)
        background, stored = bool(body.background), body.store is not False
        logged = stored and (background or bool(body.stream))
        run = Run(formatter, generation, observer(generation), self.store if stored else None, logged=logged,
                  events_ttl=self.retention.events_ttl)
        if stored:
            self._save(run, body, items, chain)
            await self.store.flush()  # committed before its id reaches the client: any replica can find it
        if background:
            self.runs.start(run)
            if body.stream:
                return Created(events=follow(self.store, self.runs, run.id, -1))
            return Created(body=formatter.snapshot())
        if body.stream:
            return Created(events=run.events())
        return Created(run=run)

    @staticmethod
    async def drain(run: Run) -> dict[str, Any]:
        """Generate a foreground response whole; its object, or a 500 if it failed."""
        async for _ in run.events():
            pass
        if run.formatter.status == "failed":
            raise InternalServerError(run.formatter.snapshot()["error"]["message"])
        return run.formatter.snapshot()

    async def retrieve(self, response_id: str, *, stream: bool,
                       starting_after: int | None) -> dict[str, Any] | bytes | AsyncGenerator[StoredEvent | None, None]:
        """``GET /v1/responses/{id}``: the object (live while it runs, else as stored), or its events from a cursor."""
        run = self.runs.get(response_id)
        if not stream:
            if run is not None:
                return run.formatter.snapshot()
            return (await self._stored(response_id)).body
        logged = run.logged if run is not None else (await self._stored(response_id)).logged
        if not logged:
            raise InvalidRequestError(
                f"Response '{response_id}' has no stored event stream: only background responses and stored "
                "streamed ones keep their events, until a while after they end.", param="stream")
        after = -1 if starting_after is None else starting_after
        return follow(self.store, self.runs, response_id, after)

    async def delete(self, response_id: str) -> dict[str, Any]:
        """``DELETE /v1/responses/{id}``: remove it with its items and events.

        A running background response is cancelled first; a running foreground stream keeps streaming to its
        client but is no longer recorded.
        """
        run = self.runs.get(response_id)
        if run is not None and run.background:
            await self.runs.cancel(run)
        elif run is not None:  # its client is still reading it: the stream goes on, unrecorded
            run.forget()
            self.runs.discard(run)
        else:
            record = await self.store.get(response_id)
            if record is not None and record.background and not record.done:  # running on another replica
                await self._cancel_remote(response_id)
        if not await self.store.delete(response_id):
            raise _not_found(response_id)
        return {"id": response_id, "object": "response.deleted", "deleted": True}

    async def cancel(self, response_id: str) -> dict[str, Any] | bytes:
        """``POST /v1/responses/{id}/cancel``: stop a background response; idempotent once it has ended."""
        run = self.runs.get(response_id)
        if run is None:
            record = await self._stored(response_id)
            if not record.background:
                raise InvalidRequestError("Only background responses can be cancelled.", param="response_id")
            if not record.done:  # running on another replica
                record = await self._cancel_remote(response_id) or record
            return record.body
        if not run.background:
            raise InvalidRequestError("Only background responses can be cancelled.", param="response_id")
        await self.runs.cancel(run)
        return run.formatter.snapshot()

    async def input_items(self, response_id: str, *, after: str | None, limit: int,
                          order: Literal["asc", "desc"]) -> bytes:
        """``GET /v1/responses/{id}/input_items``: one page of the items given to this response, as JSON."""
        try:
            page = await self.store.items(response_id, after=after, limit=limit, order=order)
        except UnknownItemError:
            raise InvalidRequestError(f"No input item '{after}' in response '{response_id}'.", param="after") from None
        if page is None:
            raise _not_found(response_id)
        data = b",".join(item.body for item in page.items)
        first = orjson.dumps(page.items[0].id if page.items else None)
        last = orjson.dumps(page.items[-1].id if page.items else None)
        return (b'{"object":"list","data":[' + data + b'],"first_id":' + first + b',"last_id":' + last
                + b',"has_more":' + (b"true" if page.has_more else b"false") + b"}")

    async def recover(self) -> int:
        """Mark responses whose server is gone (a previous process, a lost replica) as failed, keeping their
        partial output; returns how many."""
        ended = await self.store.end_orphans(self._end_orphan)
        if ended:
            logger.warning("marked %d responses left running by a server that is gone as failed: %s", len(ended),
                           ", ".join(ended[:10]))
        return len(ended)

    async def _recover_forever(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.recover()
            except Exception:
                logger.exception("ending lost replicas' responses failed")

    def _cancel_asked(self, response_id: str) -> None:
        """Another replica asked to cancel a response: cancel it if it runs here in the background."""
        run = self.runs.get(response_id)
        if run is None or not run.background or run.finished:
            return
        task = asyncio.create_task(self.runs.cancel(run), name=f"cancel-{response_id}")
        self._cancels.add(task)
        task.add_done_callback(self._cancels.discard)

    async def _cancel_remote(self, response_id: str) -> StoredResponse | None:
        """Ask the replica running a response to cancel it; its row once ended (None if it was deleted)."""
        deadline = time.monotonic() + REMOTE_CANCEL_WAIT_S
        with self.store.watch(response_id) as watch:
            self.store.request_cancel(response_id)
            while True:
                record = await self.store.get(response_id)
                if record is None or record.done:
                    return record
                left = deadline - time.monotonic()
                if left <= 0:
                    logger.warning("response %s: its replica did not record the cancel within %.0fs",
                                   response_id, REMOTE_CANCEL_WAIT_S)
                    return record
                await watch.wait(left)

    async def _chain(self, previous_id: str | None) -> list[ChainLink]:
        if previous_id is None:
            return []
        try:
            chain = await self.store.chain(previous_id, max_depth=MAX_CHAIN)
        except BrokenChainError as exc:
            which = "Previous response" if exc.missing_id == previous_id else "An earlier response of this conversation"
            raise InvalidRequestError(f"{which} with id '{exc.missing_id}' not found.", param="previous_response_id",
                                      code="previous_response_not_found") from None
        except StoreError as exc:
            raise InvalidRequestError(str(exc), param="previous_response_id") from None
        if not chain[-1].response.done:
            raise InvalidRequestError(
                f"Previous response with id '{previous_id}' is still {chain[-1].response.status}; chain from it once "
                "it has ended.", param="previous_response_id")
        return chain

    def _save(self, run: Run, body: ResponseCreateRequest, items: list[inputs.InputItem],
              chain: list[ChainLink]) -> None:
        now = time.time()
        expires = now + self.retention.ttl
        record = StoredResponse(id=run.id, created_at=now, status=run.formatter.status, background=run.background,
                                previous_response_id=body.previous_response_id,
                                body=orjson.dumps(run.formatter.snapshot()), expires_at=expires, logged=run.logged)
        self.store.create(record, [StoredItem(item.id, orjson.dumps(item.item)) for item in items])
        if chain:
            self.store.extend([link.response.id for link in chain], expires)
        self.runs.add(run)

    async def _stored(self, response_id: str) -> StoredResponse:
        record = await self.store.get(response_id)
        if record is None:
            raise _not_found(response_id)
        return record

    async def _sweep_forever(self) -> None:
        while True:
            try:
                swept = await self.store.sweep(time.time())
                if swept.responses or swept.event_logs:
                    logger.info("retention: deleted %d responses and %d event logs", swept.responses,
                                swept.event_logs)
            except Exception:
                logger.exception("retention sweep failed")
            await asyncio.sleep(self.retention.sweep_interval)


def _not_found(response_id: str) -> NotFoundError:
    return NotFoundError(f"Response with id '{response_id}' not found.")
