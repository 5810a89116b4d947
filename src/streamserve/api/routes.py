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
from streamserve.api.serving import data_only_failure, keep_alive, serve
from streamserve.api.state import LoadedModel, ServerState
from streamserve.engine import EngineStats
from streamserve.formats import sse
from streamserve.formats.completions import ChunkFormatter, CompletionBuilder, CompletionMeta, Shape, new_completion_id
from streamserve.generation.generation import GenerationRequest, start_generation
from streamserve.models import Slot
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
    """Readiness: 200 once the models loaded at start are; 503 while they load, if one failed, while draining
    and while shutting down. ``models`` gives each servable model's state."""
    state = _state(request)
    models = {} if state.models is None else {
        slot.spec.name: {"state": slot.state.value, **({"error": slot.error} if slot.error else {}),
                         **({"speculation": _speculation(slot.loaded.engine.stats())} if slot.loaded else {})}
        for slot in state.models.slots.values()}
    if state.status != "ok":
        errors = [slot["error"] for slot in models.values() if "error" in slot]
        return _json({"status": state.status, "detail": errors[0] if errors else None, "models": models}, 503)
    kernels = next((m.engine.model.kernels for m in state.loaded() if m.engine.model.kernels is not None), None)
    cpu = None if kernels is None else {
        "extra_buffer_types": list(kernels.available), "enabled": kernels.extra_bufts, "reason": kernels.reason}
    engine = state.config.engine
    return _json({"status": "ok", "cpu_kernels": cpu, "models": models,
                  "determinism": {"deterministic": engine.deterministic, "prompt_grid": engine.prompt_grid}})


def _speculation(stats: EngineStats) -> dict[str, Any]:
    """What a loaded model drafts: n-grams or not, and how many verification rows its startup probe found exact."""
    return {"ngram_drafts": stats.spec_ngram, "exact_rows": stats.spec_exact_rows}


@health_router.get("/metrics")
async def metrics(request: Request) -> Response:
    """Prometheus metrics in the text format."""
    return Response(_state(request).metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")


@router.get("/models", response_model=ModelList)
async def list_models(request: Request) -> Response:
    """Every servable model name (aliases included), loaded or not, with its state."""
    return _json(model_list(_state(request)))


@router.get("/models/{model_id:path}", response_model=ModelCard)
async def get_model(model_id: str, request: Request) -> Response:
    """One servable model, or a 404 ``model_not_found``."""
    state = _state(request)
    return _json(_card(state, state.registry().slot(model_id), model_id))


@router.post("/chat/completions", response_model=ChatCompletion)
async def chat_completions(body: ChatCompletionRequest, request: Request) -> Response:
    """Chat completions, streamed as ``chat.completion.chunk`` events or returned whole."""
    state = _state(request)

    async def respond(loaded: LoadedModel) -> Response:
        moderation = await plan_request(loaded.moderation, body.moderation, chat_prompts(body.messages),
                                        param="messages", stream=bool(body.stream))
        # Templating and tokenizing scale with the prompt: off the event loop, so no request pauses the streams.
        spec = await asyncio.to_thread(chat_request, body, loaded.engine.tokenizer, loaded.template, loaded.limits,
                                       loaded.stop_ids, moderation)
        return await _respond(request, state, loaded, Shape.CHAT, body, spec)

    return await serve(state, body.model, respond, stream=bool(body.stream), failure=data_only_failure,
                       keep_alive=keep_alive(body.keep_alive))


@router.post("/completions", response_model=Completion)
async def completions(body: CompletionRequest, request: Request) -> Response:
    """Legacy completions, streamed as ``text_completion`` chunks or returned whole."""
    state = _state(request)

    async def respond(loaded: LoadedModel) -> Response:
        prompts = completion_prompts(body.prompt, loaded.engine.tokenizer)
        moderation = await plan_request(loaded.moderation, body.moderation, prompts, param="prompt",
                                        stream=bool(body.stream))
        spec = await asyncio.to_thread(completion_request, body, loaded.engine.tokenizer, loaded.limits, moderation)
        return await _respond(request, state, loaded, Shape.COMPLETION, body, spec)

    return await serve(state, body.model, respond, stream=bool(body.stream), failure=data_only_failure,
                       keep_alive=keep_alive(body.keep_alive))


@router.post("/moderations", response_model=ModerationResponse)
async def moderations(body: ModerationRequest, request: Request) -> Response:
    """OpenAI's moderation endpoint over this server's policies: one result per input, all 13 categories.

    The policies run beside the first servable model (loading it if needed)."""
    state = _state(request)
    first = state.registry().catalog.specs[0].name

    async def respond(loaded: LoadedModel) -> Response:
        return _json(await require(loaded.moderation).moderations(body))

    return await serve(state, first, respond, stream=False, failure=data_only_failure)


async def _respond(request: Request, state: ServerState, loaded: LoadedModel, shape: Shape,
                   body: ChatCompletionRequest | CompletionRequest, spec: GenerationRequest) -> Response:
    """The path chat and completions share: admit (errors become their statuses in ``api.errors``), then
    stream or collect."""
    generation = start_generation(loaded.engine, spec)
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    meta = CompletionMeta(shape, new_completion_id(shape), int(time.time()), body.model, len(spec.choices),
                          include_usage, loaded.fingerprint, spec.opening)
    recorder = RequestRecorder(state.metrics, request_id(request, meta.id), lambda: generation.streams[0].queue_time,
                               loaded.spec.name)
    if body.stream:
        return StreamingResponse(stream(generation, ChunkFormatter(meta), recorder, DATA_ONLY),
                                 media_type=sse.MEDIA_TYPE, headers=dict(sse.HEADERS))
    result = await unless_disconnected(request, collect(generation, CompletionBuilder(meta), recorder))
    return Response(status_code=499) if result is None else _json(result)


def model_list(state: ServerState) -> dict[str, Any]:
    """``/v1/models`` and ``/models``: every served name of every servable model."""
    registry = state.registry()
    return {"object": "list", "data": [_card(state, registry.slots[spec.name], name)
                                       for spec in registry.catalog.specs for name in spec.names]}


def _card(state: ServerState, slot: Slot[LoadedModel], name: str) -> dict[str, Any]:
    loaded = slot.loaded
    card: dict[str, Any] = {"id": name, "object": "model", "created": state.created, "owned_by": "streamserve",
                            "state": slot.state.value, "deterministic": state.config.engine.deterministic}
    if loaded is not None:
        card["max_model_len"] = loaded.config.max_model_len
        card["memory_bytes"] = slot.memory
    return card
