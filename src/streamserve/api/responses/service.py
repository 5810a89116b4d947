"""ResponsesService: what the ``/v1/responses`` routes do, over the store and the registry of runs.

Create validates everything and admits the generation (429 when the engine is full) before a byte
is sent, then streams, collects, or hands the run to a background task. It knows nothing of HTTP:
it returns objects, raw stored JSON and event iterators, which the routes turn into responses. Stored responses, their
input items and their event logs go to the store as they happen. At startup, responses a previous
process left running are marked failed; a periodic sweep deletes what has expired.
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

RESTART_MESSAGE = "The server restarted while this response was generating; it was not finished."


@dataclass(frozen=True, slots=True)
class Created:
    """How a created response is answered: its ``events`` streamed, its ``run`` drained, or its ``body`` now."""

    events: AsyncGenerator[StoredEvent | None, None] | None = None
    run: Run | None = None
    body: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Retention:
    """How long stored responses (``ttl``) and their event logs after they end (``events_ttl``) are kept."""

    ttl: float
    events_ttl: float
    sweep_interval: float


class ResponsesService:
    """The Responses API over one store; one per server."""

    def __init__(self, store: ResponseStore, retention: Retention) -> None:
        self.store = store
        self.retention = retention
        self.runs = RunRegistry()
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Mark what a previous process left running as failed, then start the retention sweeps."""
        await self.recover()
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="responses-sweeper")

    async def stop(self, timeout: float = 10.0) -> None:
        """Let background runs record their end (the engine has failed them), stop sweeping, flush the store."""
        await self.runs.shutdown(timeout)
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
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
        """Mark responses left queued or in progress by a previous process as failed; returns how many."""
        unfinished = await self.store.unfinished()
        now = time.time()
        for record in unfinished:
            body = orjson.loads(record.body)
            body.update(status="failed", error={"code": "server_error", "message": RESTART_MESSAGE})
            for item in body.get("output", []):
                if item.get("status") == "in_progress":
                    item["status"] = "incomplete"
            data = orjson.dumps(body)
            if record.logged:
                seq = await self.store.last_sequence(record.id) + 1
                event = {"type": "response.failed", "sequence_number": seq, "response": body}
                self.store.append_event(record.id, StoredEvent(seq, "response.failed", orjson.dumps(event)))
            self.store.update(record.id, status="failed", body=data, done=True,
                              events_expire_at=now + self.retention.events_ttl if record.logged else None)
        if unfinished:
            logger.warning("marked %d responses left running by the previous server as failed", len(unfinished))
        return len(unfinished)

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
