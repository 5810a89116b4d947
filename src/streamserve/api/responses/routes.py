"""The ``/v1/responses`` routes: thin handlers over ``ResponsesService``."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from streamserve.api.auth import require_api_key
from streamserve.api.body import JSONRoute
from streamserve.api.errors import ServiceUnavailableError
from streamserve.api.protocol import InputItemList, ResponseCreateRequest, ResponseDeleted, ResponseObject
from streamserve.api.responses.service import ResponsesService
from streamserve.api.state import ServerState

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
    state.check_model(body.model)
    loaded = state.ready()
    return await _service(request).create(body, request, state, loaded)


@router.get("/{response_id}", response_model=ResponseObject)
async def retrieve_response(
    response_id: str, request: Request, stream: bool = False,
    starting_after: Annotated[int | None, Query(ge=0)] = None,
) -> Response:
    """A stored response; with ``stream=true``, its events again (after ``starting_after``), then live ones."""
    return await _service(request).retrieve(response_id, stream=stream, starting_after=starting_after)


@router.delete("/{response_id}", response_model=ResponseDeleted)
async def delete_response(response_id: str, request: Request) -> Response:
    """Delete a stored response (cancelling it first if it still runs)."""
    return await _service(request).delete(response_id)


@router.post("/{response_id}/cancel", response_model=ResponseObject)
async def cancel_response(response_id: str, request: Request) -> Response:
    """Cancel a background response; cancelling one that has ended returns it unchanged."""
    return await _service(request).cancel(response_id)


@router.get("/{response_id}/input_items", response_model=InputItemList)
async def list_input_items(
    response_id: str, request: Request, after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20, order: Literal["asc", "desc"] = "desc",
) -> Response:
    """The input items of a response, a page at a time (OpenAI's ``after`` / ``limit`` / ``order``)."""
    return await _service(request).input_items(response_id, after=after, limit=limit, order=order)
