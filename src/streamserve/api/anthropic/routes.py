"""The ``/v1/messages`` routes: thin handlers over ``request.py``, the driver and ``formats.anthropic``.

``anthropic-version`` and ``anthropic-beta`` headers are accepted (and need not be sent); ``x-api-key``
works like ``Authorization: Bearer`` (``api/auth.py``); ``model`` is any served name (its aliases too).
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse

from streamserve.api.anthropic.content import conversation
from streamserve.api.anthropic.protocol import CountTokensRequest, MessagesRequest
from streamserve.api.anthropic.request import count_tokens, messages_request
from streamserve.api.auth import require_api_key
from streamserve.api.body import JSONRoute
from streamserve.api.disconnect import unless_disconnected
from streamserve.api.metrics import RequestRecorder
from streamserve.api.middleware import request_id
from streamserve.api.moderation import message_prompts, plan_request
from streamserve.api.state import ServerState
from streamserve.formats import sse
from streamserve.formats.anthropic import MessageBuilder, MessageFormatter
from streamserve.generation.generation import start_generation
from streamserve.pipeline.driver import PINGED, collect, stream

MESSAGES_PREFIX = "/v1/messages"
"""Every path under it answers errors in Anthropic's envelope (``api/anthropic/errors.py``)."""

router = APIRouter(prefix=MESSAGES_PREFIX, dependencies=[Depends(require_api_key)], route_class=JSONRoute)


def _state(request: Request) -> ServerState:
    state: ServerState = request.app.state.streamserve
    return state


def _json(payload: Any) -> Response:
    return Response(orjson.dumps(payload), media_type="application/json")


@router.post("")
async def create_message(body: MessagesRequest, request: Request) -> Response:
    """A message, streamed as Anthropic's events (``stream: true``) or returned whole."""
    state = _state(request)
    state.check_model(body.model)
    loaded = state.ready()
    talk = conversation(body.system, body.messages)
    moderation = await plan_request(loaded.moderation, None, message_prompts(talk.messages, param="messages"),
                                    param="messages", stream=bool(body.stream))
    spec, meta = await asyncio.to_thread(messages_request, body, talk, loaded.engine.tokenizer, loaded.template,
                                         loaded.limits, loaded.stop_ids, moderation)
    generation = start_generation(loaded.engine, spec)
    recorder = RequestRecorder(state.metrics, request_id(request, meta.id), lambda: generation.streams[0].queue_time)
    if body.stream:
        return StreamingResponse(stream(generation, MessageFormatter(meta, generation.usage), recorder, PINGED),
                                 media_type=sse.MEDIA_TYPE, headers=dict(sse.HEADERS))
    result = await unless_disconnected(request, collect(generation, MessageBuilder(meta), recorder))
    return Response(status_code=499) if result is None else _json(result)


@router.post("/count_tokens")
async def count_message_tokens(body: CountTokensRequest, request: Request) -> Response:
    """``{"input_tokens": N}``: the prompt ``/v1/messages`` would read for the same fields, with the real
    template and tokenizer (system and tools included)."""
    state = _state(request)
    state.check_model(body.model)
    loaded = state.ready()
    tokens = await asyncio.to_thread(count_tokens, body, loaded.engine.tokenizer, loaded.template, loaded.limits)
    return _json({"input_tokens": tokens})
