"""create_app: the FastAPI application, its lifespan (load the model, start and stop the engine) and routes."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.middleware import Middleware
from starlette.types import ASGIApp

from streamserve.api.anthropic import MESSAGES_PREFIX, anthropic_envelope
from streamserve.api.anthropic import router as messages_router
from streamserve.api.docs import mount_docs
from streamserve.api.errors import install_error_handlers
from streamserve.api.limits import BodyLimitMiddleware
from streamserve.api.metrics import Metrics
from streamserve.api.middleware import RequestIdMiddleware
from streamserve.api.moderation import build_moderation
from streamserve.api.params import Limits, control_stop_ids
from streamserve.api.playground import mount_playground
from streamserve.api.responses import ResponsesService, Retention
from streamserve.api.responses import router as responses_router
from streamserve.api.routes import health_router, router
from streamserve.api.state import LoadedModel, ServerState
from streamserve.config import ServerConfig
from streamserve.engine import EngineClient, EngineStats
from streamserve.models import resolve_model
from streamserve.moderation import ModerationObserver
from streamserve.prompting.templates import choose_template
from streamserve.store import ResponseStore, StoreError, is_shared, make_store

logger = logging.getLogger("streamserve")


def load(config: ServerConfig, loop: asyncio.AbstractEventLoop | None = None,
         observer: ModerationObserver | None = None) -> LoadedModel:
    """Resolve and load the model, pick its chat template, start the engine and the moderation (blocking).

    ``loop`` is the event loop a guard model's checks hand their engine work to.
    """
    _, path = resolve_model(config.model)
    engine = EngineClient.load(path, config.engine)
    model = engine.model
    try:
        override = Path(config.chat_template_file) if config.chat_template_file else None
        template = choose_template(
            override_text=override.read_text() if override else None,
            override_name=str(override) if override else None,
            gguf_template=model.chat_template,
            architecture=model.architecture,
        )
        engine.start()
        moderation = build_moderation(config, engine, template, loop, observer)
    except Exception:
        engine.close()
        raise
    limits = Limits(
        max_model_len=config.engine.max_model_len,
        n_vocab=model.n_vocab,
        max_token_bytes=model.max_token_bytes,
        max_n=config.max_n,
        max_stop_strings=config.max_stop_strings,
        max_tokens_default=config.max_tokens_default,
        max_sequences=config.sequences_per_request,
    )
    fingerprint = "fp_" + hashlib.sha256(f"{path.name}:{path.stat().st_size}".encode()).hexdigest()[:10]
    return LoadedModel(engine, template, limits, fingerprint, control_stop_ids(template.stop, model), moderation)


def create_app(config: ServerConfig, model_names: tuple[str, ...]) -> FastAPI:
    """The app; the model loads in the background so ``/health`` can say 503 until it is ready."""
    holder: list[ServerState] = []

    def stats() -> EngineStats | None:
        loaded = holder[0].loaded if holder else None
        return loaded.engine.stats() if loaded else None

    state = ServerState(config=config, model_names=model_names, metrics=Metrics(stats, model_names[0]))
    holder.append(state)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = await _open_store(config)
        orphans = config.store_lease / 3 if is_shared(config.store_url) else None
        state.responses = ResponsesService(store, Retention(config.store_ttl, config.store_events_ttl,
                                                            config.store_sweep_interval, orphans))
        await state.responses.start()
        task = asyncio.create_task(_load_in_background(state))
        try:
            yield
        finally:
            state.shutting_down = True
            await asyncio.gather(task, return_exceptions=True)
            if state.loaded is not None:  # background responses record their end before the model is freed
                await asyncio.to_thread(state.loaded.engine.shutdown)
            await state.responses.stop()
            await store.close()
            if state.loaded is not None:
                await asyncio.to_thread(close, state.loaded)

    # FastAPI's own /docs and /redoc load their scripts from a CDN: /docs is served offline instead
    # (api/docs.py) and /redoc not at all.
    app = _App(title="streamserve", version=_version(), lifespan=lifespan, docs_url=None, redoc_url=None,
               description="An OpenAI-compatible LLM inference server built for streaming.")
    app.state.streamserve = state
    install_error_handlers(app, {MESSAGES_PREFIX: anthropic_envelope})
    app.include_router(health_router)
    app.include_router(router)
    app.include_router(responses_router)
    app.include_router(messages_router)
    mount_docs(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=config.max_request_bytes)
    if config.playground:
        mount_playground(app)
    app.outer_middleware.append(Middleware(RequestIdMiddleware))
    if config.allowed_origins:
        app.outer_middleware.append(Middleware(CORSMiddleware, allow_origins=list(config.allowed_origins),
                                               allow_methods=["*"], allow_headers=["*"],
                                               expose_headers=["x-request-id"]))
    return app


class _App(FastAPI):
    """FastAPI with ``outer_middleware`` (first is outermost) wrapped around its whole stack.

    Middleware added the usual way runs inside Starlette's error middleware (which renders an
    unhandled exception as a 500) and FastAPI's body-size limit, so their responses would lack the
    request id and CORS headers; wrapped outside, every response carries them.
    """

    def __init__(self, **kwargs: Any) -> None:
        self.outer_middleware: list[Middleware] = []
        super().__init__(**kwargs)

    def build_middleware_stack(self) -> ASGIApp:
        """Starlette's stack, inside ``outer_middleware``."""
        app = super().build_middleware_stack()
        for cls, args, kwargs in reversed(self.outer_middleware):
            app = cls(app, *args, **kwargs)
        return app


async def _open_store(config: ServerConfig) -> ResponseStore:
    try:
        store = make_store(config.store_url, config.data_dir, lease=config.store_lease,
                           sweep_interval=config.store_sweep_interval)
        await store.open()
    except StoreError as exc:
        logger.error("cannot open the response store: %s", exc)
        raise
    where = getattr(store, "path", config.store_url)
    lease = f"; replica {store.replica}, lease {_span(config.store_lease)}" if is_shared(config.store_url) else ""
    logger.info("stored responses in %s (kept %s; stream events %s after they end%s)", where,
                _span(config.store_ttl), _span(config.store_events_ttl), lease)
    return store


def _span(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def close(loaded: LoadedModel) -> None:
    """Stop the engine (open streams end with an error event), the moderation, and free the model."""
    if loaded.moderation is not None:
        loaded.moderation.close()
    loaded.engine.close()


async def _load_in_background(state: ServerState) -> None:
    try:
        state.loaded = await asyncio.to_thread(load, state.config, asyncio.get_running_loop(), state.metrics)
    except Exception as exc:
        state.load_error = f"model failed to load: {exc}"
        logger.exception("model failed to load")
        return
    _banner(state)


def _banner(state: ServerState) -> None:
    loaded = state.loaded
    assert loaded is not None
    cfg = state.config
    model = loaded.engine.model
    url = f"http://{cfg.host}:{cfg.port}"
    key = " -H \"Authorization: Bearer $STREAMSERVE_API_KEY\"" if cfg.api_key else ""  # never the key itself
    logger.info("model %s (%s, %s) from %s", state.model_names[0], model.name, model.architecture, model.path)
    if model.kernels is not None:
        logger.info("%s", model.kernels.describe())
    logger.info(
        "chat template: %s; context %d tokens per sequence x %d sequences; queue %d; threads %d; "
        "limits: n<=%d, sequences (prompts x n) per request<=%d, stop strings<=%d; API key %s",
        loaded.template.name, cfg.engine.max_model_len, cfg.engine.max_num_seqs, cfg.engine.max_queue,
        cfg.engine.n_threads,
        cfg.max_n, cfg.sequences_per_request, cfg.max_stop_strings, "required" if cfg.api_key else "not required",
    )
    logger.info("serving %s on %s/v1 (names: %s)", state.model_names[0], url, ", ".join(state.model_names))
    if cfg.playground:
        logger.info("playground: %s/ in a browser", url)
    logger.info(
        "try: curl %s/v1/chat/completions -H 'Content-Type: application/json'%s -d "
        "'{\"model\": \"%s\", \"messages\": [{\"role\": \"user\", \"content\": \"Hello!\"}], \"stream\": true}'",
        url, key, state.model_names[0],
    )


def _version() -> str:
    from streamserve import __version__

    return __version__
