"""ResponsesService: what the ``/v1/responses`` routes do, over the store and the registry of runs.

Create validates everything and admits the generation (429 when the engine is full) before a byte
is sent, then streams, collects, or hands the run to a background task. Stored responses, their
input items and their event logs go to the store as they happen. At startup, responses a previous
process left running are marked failed; a periodic sweep deletes what has expired.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from fastapi import Request
from fastapi.responses import Response, StreamingResponse

from streamserve.api.disconnect import unless_disconnected
from streamserve.api.errors import (
    InternalServerError,
    InvalidRequestError,
    NotFoundError,
    RateLimitError,
    ServiceUnavailableError,
)
from streamserve.api.metrics import RequestRecorder
from streamserve.api.moderation import message_prompts, plan_request
from streamserve.api.protocol import ResponseCreateRequest
from streamserve.api.responses import inputs, request
from streamserve.api.responses.replay import follow
from streamserve.api.responses.runs import Run, RunRegistry
from streamserve.api.state import LoadedModel, ServerState
from streamserve.engine import EngineStoppedError, QueueFullError
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
from streamserve.streaming import sse
from streamserve.streaming.generation import ChoiceRequest, GenerationRequest, start_generation
from streamserve.streaming.responses_format import ResponsesFormatter, ResponsesMeta, new_response_id
from streamserve.streaming.structured import OutputSpec, plan_output

logger = logging.getLogger("streamserve.responses")

MAX_CHAIN = 1000
"""Responses a ``previous_response_id`` chain may hold."""

RESTART_MESSAGE = "The server restarted while this response was generating; it was not finished."


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

    async def create(self, body: ResponseCreateRequest, http: Request, state: ServerState,
                     loaded: LoadedModel) -> Response:
        """``POST /v1/responses``: stream it, return it, or return it queued and run it in the background."""
        wanted = request.check(body)
        shape = plan_output(wanted)
        chain = await self._chain(body.previous_response_id)
        items = inputs.parse_input(body.input)
        # Templating scales with the input: off the event loop.
        prompt = await asyncio.to_thread(_prompt, body, loaded, chain, items, wanted, shape.prompt_suffix)
        params = request.sampling(body, prompt.max_tokens, loaded.stop_ids, shape.grammar)
        moderation = await plan_request(loaded.moderation, body.moderation,
                                        message_prompts([item.message for item in items]), param="input",
                                        stream=bool(body.stream))
        spec = GenerationRequest([ChoiceRequest(prompt.ids, params)], loaded.template.stop, len(prompt.ids),
                                 moderation=moderation, tool_prefix=shape.tool_prefix)
        try:
            generation = start_generation(loaded.engine, spec)
        except QueueFullError as exc:
            raise RateLimitError(f"{exc}; retry shortly.", retry_after=1) from None
        except EngineStoppedError as exc:
            raise ServiceUnavailableError(str(exc)) from None
        background, stored = bool(body.background), body.store is not False
        meta = ResponsesMeta(new_response_id(), int(time.time()), body.model, background,
                             request.echo_fields(body), request.wants_logprobs(body))
        formatter = ResponsesFormatter(meta)
        request_id = http.scope.get("state", {}).get("request_id", meta.id)
        recorder = RequestRecorder(state.metrics, request_id, lambda: generation.streams[0].queue_time)
        logged = stored and (background or bool(body.stream))
        run = Run(formatter, generation, recorder, self.store if stored else None, logged=logged,
                  events_ttl=self.retention.events_ttl)
        if stored:
            self._save(run, body, items, chain)
        if background:
            self.runs.start(run)
            if body.stream:
                return _event_stream(follow(self.store, self.runs, run.id, -1))
            return _json(formatter.snapshot())
        if body.stream:
            return _event_stream(run.events())
        if await unless_disconnected(http, _drain(run)) is None:
            return Response(status_code=499)
        if formatter.status == "failed":
            raise InternalServerError(formatter.snapshot()["error"]["message"])
        return _json(formatter.snapshot())

    async def retrieve(self, response_id: str, *, stream: bool, starting_after: int | None) -> Response:
        """``GET /v1/responses/{id}``: the object (live while it runs), or its event stream from a cursor."""
        run = self.runs.get(response_id)
        if not stream:
            if run is not None:
                return _json(run.formatter.snapshot())
            return _raw_json((await self._stored(response_id)).body)
        logged = run.logged if run is not None else (await self._stored(response_id)).logged
        if not logged:
            raise InvalidRequestError(
                f"Response '{response_id}' has no stored event stream: only background responses and stored "
                "streamed ones keep their events, until a while after they end.", param="stream")
        after = -1 if starting_after is None else starting_after
        return _event_stream(follow(self.store, self.runs, response_id, after))

    async def delete(self, response_id: str) -> Response:
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
        return _json({"id": response_id, "object": "response.deleted", "deleted": True})

    async def cancel(self, response_id: str) -> Response:
        """``POST /v1/responses/{id}/cancel``: stop a background response; idempotent once it has ended."""
        run = self.runs.get(response_id)
        if run is None:
            record = await self._stored(response_id)
            if not record.background:
                raise InvalidRequestError("Only background responses can be cancelled.", param="response_id")
            return _raw_json(record.body)
        if not run.background:
            raise InvalidRequestError("Only background responses can be cancelled.", param="response_id")
        await self.runs.cancel(run)
        return _json(run.formatter.snapshot())

    async def input_items(self, response_id: str, *, after: str | None, limit: int,
                          order: Literal["asc", "desc"]) -> Response:
        """``GET /v1/responses/{id}/input_items``: one page of the items given to this response."""
        try:
            page = await self.store.items(response_id, after=after, limit=limit, order=order)
        except UnknownItemError:
            raise InvalidRequestError(f"No input item '{after}' in response '{response_id}'.", param="after") from None
        if page is None:
            raise _not_found(response_id)
        data = b",".join(item.body for item in page.items)
        first = orjson.dumps(page.items[0].id if page.items else None)
        last = orjson.dumps(page.items[-1].id if page.items else None)
        return _raw_json(b'{"object":"list","data":[' + data + b'],"first_id":' + first + b',"last_id":' + last
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


def _prompt(body: ResponseCreateRequest, loaded: LoadedModel, chain: list[ChainLink],
            items: list[inputs.InputItem], wanted: OutputSpec, suffix: str) -> inputs.Prompt:
    return inputs.build_prompt(
        loaded.template, loaded.engine.tokenizer, loaded.limits, instructions=body.instructions,
        history=inputs.conversation(chain) + [item.message for item in items],
        max_output_tokens=body.max_output_tokens, truncation=body.truncation or "disabled",
        spec=wanted, suffix=suffix)


async def _drain(run: Run) -> bool:
    async for _ in run.events():
        pass
    return True


def _not_found(response_id: str) -> NotFoundError:
    return NotFoundError(f"Response with id '{response_id}' not found.")


def _json(payload: Any) -> Response:
    return _raw_json(orjson.dumps(payload))


def _raw_json(body: bytes) -> Response:
    return Response(body, media_type="application/json")


def _event_stream(events: AsyncGenerator[StoredEvent | None, None]) -> StreamingResponse:
    return StreamingResponse(_frames(events), media_type=sse.MEDIA_TYPE, headers=dict(sse.HEADERS))


async def _frames(events: AsyncGenerator[StoredEvent | None, None]) -> AsyncIterator[bytes]:
    """Each event as ``event: <type>`` + ``data: <json>``; None becomes a keep-alive comment."""
    async with contextlib.aclosing(events):
        async for event in events:
            yield sse.KEEPALIVE if event is None else sse.named(event.type, event.data)
