"""HTTP routes: thin handlers that parse, hand over to the request pipeline, and shape the response."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse

from streamserve.api.auth import require_api_key
from streamserve.api.body import JSONRoute
from streamserve.api.disconnect import unless_disconnected
from streamserve.api.metrics import RequestRecorder
from streamserve.api.middleware import request_id
from streamserve.api.moderation import chat_prompts, completion_prompts, plan_request, require
from streamserve.api.params import chat_request, completion_request
from streamserve.api.protocol import (
    ChatCompletion,
    ChatCompletionRequest,
    Completion,
    CompletionRequest,
    ModelCard,
    ModelList,
    ModerationRequest,
    ModerationResponse,
)
from streamserve.api.state import LoadedModel, ServerState
from streamserve.formats import sse
from streamserve.formats.completions import ChunkFormatter, CompletionBuilder, CompletionMeta, Shape, new_completion_id
from streamserve.generation.generation import GenerationRequest, start_generation
from streamserve.pipeline.driver import DATA_ONLY, collect, stream

health_router = APIRouter()
router = APIRouter(prefix="/v1", dependencies=[Depends(require_api_key)], route_class=JSONRoute)


def _state(request: Request) -> ServerState:
    state: ServerState = request.app.state.streamserve
    return state


def _json(payload: Any, status_code: int = 200) -> Response:
    return Response(orjson.dumps(payload), status_code=status_code, media_type="application/json")


@health_router.get("/health")
async def health(request: Request) -> Response:
    """Readiness: 200 once the model is loaded; 503 while it loads, while draining and while shutting down."""
    state = _state(request)
    if state.status != "ok" or state.loaded is None:
        return _json({"status": state.status, "detail": state.load_error}, 503)
    kernels = state.loaded.engine.model.kernels
    cpu = None if kernels is None else {
        "extra_buffer_types": list(kernels.available), "enabled": kernels.extra_bufts, "reason": kernels.reason}
    engine = state.config.engine
    return _json({"status": "ok", "cpu_kernels": cpu,
                  "determinism": {"deterministic": engine.deterministic, "prompt_grid": engine.prompt_grid}})


@health_router.get("/metrics")
async def metrics(request: Request) -> Response:
    """Prometheus metrics in the text format."""
    return Response(_state(request).metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")


@router.get("/models", response_model=ModelList)
async def list_models(request: Request) -> Response:
    """Every served name (aliases of the one model), with the per-request context size."""
    state = _state(request)
    return _json({"object": "list", "data": [_card(state, name) for name in state.model_names]})


@router.get("/models/{model_id:path}", response_model=ModelCard)
async def get_model(model_id: str, request: Request) -> Response:
    """One served model, or a 404 ``model_not_found``."""
    state = _state(request)
    state.check_model(model_id)
    return _json(_card(state, model_id))


@router.post("/chat/completions", response_model=ChatCompletion)
async def chat_completions(body: ChatCompletionRequest, request: Request) -> Response:
    """Chat completions, streamed as ``chat.completion.chunk`` events or returned whole."""
    state = _state(request)
    state.check_model(body.model)
    loaded = state.ready()
    moderation = await plan_request(loaded.moderation, body.moderation, chat_prompts(body.messages),
                                    param="messages", stream=bool(body.stream))
    # Templating and tokenizing scale with the prompt: off the event loop, so no request pauses the streams.
    spec = await asyncio.to_thread(chat_request, body, loaded.engine.tokenizer, loaded.template, loaded.limits,
                                   loaded.stop_ids, moderation)
    return await _respond(request, state, loaded, Shape.CHAT, body, spec)


@router.post("/completions", response_model=Completion)
async def completions(body: CompletionRequest, request: Request) -> Response:
    """Legacy completions, streamed as ``text_completion`` chunks or returned whole."""
    state = _state(request)
    state.check_model(body.model)
    loaded = state.ready()
    prompts = completion_prompts(body.prompt, loaded.engine.tokenizer)
    moderation = await plan_request(loaded.moderation, body.moderation, prompts, param="prompt",
                                    stream=bool(body.stream))
    spec = await asyncio.to_thread(completion_request, body, loaded.engine.tokenizer, loaded.limits, moderation)
    return await _respond(request, state, loaded, Shape.COMPLETION, body, spec)


@router.post("/moderations", response_model=ModerationResponse)
async def moderations(body: ModerationRequest, request: Request) -> Response:
    """OpenAI's moderation endpoint over this server's policies: one result per input, all 13 categories."""
    loaded = _state(request).ready()
    return _json(await require(loaded.moderation).moderations(body))


async def _respond(request: Request, state: ServerState, loaded: LoadedModel, shape: Shape,
                   body: ChatCompletionRequest | CompletionRequest, spec: GenerationRequest) -> Response:
    """The path chat and completions share: admit (errors become their statuses in ``api.errors``), then
    stream or collect."""
    generation = start_generation(loaded.engine, spec)
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    meta = CompletionMeta(shape, new_completion_id(shape), int(time.time()), body.model, len(spec.choices),
                          include_usage, loaded.fingerprint, spec.opening)
    recorder = RequestRecorder(state.metrics, request_id(request, meta.id), lambda: generation.streams[0].queue_time)
    if body.stream:
        return StreamingResponse(stream(generation, ChunkFormatter(meta), recorder, DATA_ONLY),
                                 media_type=sse.MEDIA_TYPE, headers=dict(sse.HEADERS))
    result = await unless_disconnected(request, collect(generation, CompletionBuilder(meta), recorder))
    return Response(status_code=499) if result is None else _json(result)


def _card(state: ServerState, name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": state.created, "owned_by": "streamserve",
            "max_model_len": state.config.engine.max_model_len, "deterministic": state.config.engine.deterministic}
