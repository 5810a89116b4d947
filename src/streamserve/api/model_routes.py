"""Model control, under llama.cpp's router names: ``GET /models``, ``POST /models/load``, ``POST /models/unload``."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from streamserve.api.auth import require_api_key
from streamserve.api.body import JSONRoute
from streamserve.api.protocol import ModelAction, ModelList
from streamserve.api.routes import model_list
from streamserve.api.state import LoadedModel, ServerState
from streamserve.models import Slot

router = APIRouter(prefix="/models", dependencies=[Depends(require_api_key)], route_class=JSONRoute)


def _state(request: Request) -> ServerState:
    state: ServerState = request.app.state.streamserve
    return state


def _result(slot: Slot[LoadedModel]) -> Response:
    body = {"model": slot.spec.name, "state": slot.state.value, "memory_bytes": slot.memory or None}
    return Response(orjson.dumps(body), media_type="application/json")


@router.get("", response_model=ModelList)
async def list_models(request: Request) -> Response:
    """The same list as ``/v1/models``."""
    return Response(orjson.dumps(model_list(_state(request))), media_type="application/json")


@router.post("/load")
async def load_model(body: ModelAction, request: Request) -> Response:
    """Load a model now (making room by the usual rules); answers once it is loaded."""
    return _result(await _state(request).registry().load(body.model))


@router.post("/unload")
async def unload_model(body: ModelAction, request: Request) -> Response:
    """Unload a model now; 409 while it serves requests."""
    return _result(await _state(request).registry().unload(body.model))
