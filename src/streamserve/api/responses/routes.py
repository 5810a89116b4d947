"""The ``/v1/responses`` routes: thin handlers over ``ResponsesService``."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse

from streamserve.api.auth import require_api_key
from streamserve.api.body import JSONRoute
from streamserve.api.disconnect import unless_disconnected
from streamserve.api.errors import ServiceUnavailableError
from streamserve.api.metrics import RequestRecorder
from streamserve.api.middleware import request_id
from streamserve.api.protocol import InputItemList, ResponseCreateRequest, ResponseDeleted, ResponseObject
from streamserve.api.responses.service import ResponsesService
from streamserve.api.serving import keep_alive, named_failure, serve
from streamserve.api.state import LoadedModel, ServerState
from streamserve.formats import sse
from streamserve.generation.generation import Generation
from streamserve.store import StoredEvent

router = APIRouter(prefix="/v1/responses", dependencies=[Depends(require_api_key)], route_class=JSONRoute)


def _state(request: Request) -> ServerState:
    state: ServerState = request.app.state.streamserve
    return state


def _service(request: Request) -> ResponsesService:
    service = _state(request).responses
    if service is None:
        raise ServiceUnavailableError("The response store is not open yet; retry shortly.")
    return service


@router.post("", response_model=ResponseObject)
async def create_response(body: ResponseCreateRequest, request: Request) -> Response:
    """Create a response: streamed as named events, returned whole, or queued in the background."""
    state = _state(request)
    rid = request_id(request, "")
    service = _service(request)

    async def respond(loaded: LoadedModel) -> Response:
        def observer(generation: Generation) -> RequestRecorder:
            return RequestRecorder(state.metrics, rid, lambda: generation.streams[0].queue_time, loaded.spec.name)

        created = await service.create(body, loaded, observer)
        if created.events is not None:
            return _event_stream(created.events)
        if created.run is not None:
            result = await unless_disconnected(request, service.drain(created.run))
            return Response(status_code=499) if result is None else _json(result)
        return _json(created.body)

    return await serve(state, body.model, respond, stream=bool(body.stream), failure=named_failure,
                       keep_alive=keep_alive(body.keep_alive))


@router.get("/{response_id}", response_model=ResponseObject)
async def retrieve_response(
    response_id: str, request: Request, stream: bool = False,
    starting_after: Annotated[int | None, Query(ge=0)] = None,
) -> Response:
    """A stored response; with ``stream=true``, its events again (after ``starting_after``), then live ones."""
    result = await _service(request).retrieve(response_id, stream=stream, starting_after=starting_after)
    return _json(result) if isinstance(result, dict | bytes) else _event_stream(result)


@router.delete("/{response_id}", response_model=ResponseDeleted)
async def delete_response(response_id: str, request: Request) -> Response:
    """Delete a stored response (cancelling it first if it still runs)."""
    return _json(await _service(request).delete(response_id))


@router.post("/{response_id}/cancel", response_model=ResponseObject)
async def cancel_response(response_id: str, request: Request) -> Response:
    """Cancel a background response; cancelling one that has ended returns it unchanged."""
    return _json(await _service(request).cancel(response_id))


@router.get("/{response_id}/input_items", response_model=InputItemList)
async def list_input_items(
    response_id: str, request: Request, after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20, order: Literal["asc", "desc"] = "desc",
) -> Response:
    """The input items of a response, a page at a time (OpenAI's ``after`` / ``limit`` / ``order``)."""
    return _json(await _service(request).input_items(response_id, after=after, limit=limit, order=order))


def _json(body: dict[str, Any] | bytes | None) -> Response:
    """An object, or JSON already serialized (a stored body), as the response."""
    return Response(body if isinstance(body, bytes) else orjson.dumps(body), media_type="application/json")


def _event_stream(events: AsyncGenerator[StoredEvent | None, None]) -> StreamingResponse:
    return StreamingResponse(_frames(events), media_type=sse.MEDIA_TYPE, headers=dict(sse.HEADERS))


async def _frames(events: AsyncGenerator[StoredEvent | None, None]) -> AsyncIterator[bytes]:
    """Each stored event as ``event: <type>`` + ``data: <json>``; None becomes a keep-alive comment."""
    async with contextlib.aclosing(events):
        async for event in events:
            yield sse.KEEPALIVE if event is None else sse.named(event.type, event.data)
