"""create_app: the FastAPI application, its lifespan (load the model, start and stop the engine) and routes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
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
from streamserve.api.loading import ModelLoader
from streamserve.api.metrics import Metrics, ModelReport
from streamserve.api.middleware import RequestIdMiddleware
from streamserve.api.model_routes import router as models_router
from streamserve.api.playground import mount_playground
from streamserve.api.responses import ResponsesService, Retention
from streamserve.api.responses import router as responses_router
from streamserve.api.routes import health_router, router
from streamserve.api.state import ServerState
from streamserve.config import ServerConfig
from streamserve.engine import EngineStats
from streamserve.models import ModelRegistry, default_budget, format_size
from streamserve.store import ResponseStore, StoreError, is_shared, make_store

logger = logging.getLogger("streamserve")


def create_app(config: ServerConfig) -> FastAPI:
    """The app; preloaded models load in the background so ``/health`` can say 503 until they are ready."""
    holder: list[ServerState] = []

    def stats() -> list[tuple[str, EngineStats]]:
        return [(m.spec.name, m.engine.stats()) for m in holder[0].loaded()] if holder else []

    def models() -> tuple[int, list[ModelReport]]:
        registry = holder[0].models if holder else None
        if registry is None:
            return 0, []
        return registry.budget, [ModelReport(s.spec.name, s.state.value, s.memory, s.loads)
                                 for s in registry.slots.values()]

    state = ServerState(config=config, metrics=Metrics(stats, models))
    holder.append(state)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = await _open_store(config)
        orphans = config.store_lease / 3 if is_shared(config.store_url) else None
        state.responses = ResponsesService(store, Retention(config.store_ttl, config.store_events_ttl,
                                                            config.store_sweep_interval, orphans))
        await state.responses.start()
        loader = ModelLoader(config, asyncio.get_running_loop(), state.metrics)
        budget = config.max_memory if config.max_memory is not None else default_budget()
        state.models = ModelRegistry(config.models, loader, budget=budget, keep_alive=config.keep_alive)
        state.models.start()
        banner = asyncio.create_task(_banner_when_ready(state, budget))
        try:
            yield
        finally:
            state.shutting_down = True
            banner.cancel()
            # Background responses record their end before the models are freed.
            await asyncio.gather(*(asyncio.to_thread(m.engine.shutdown) for m in state.loaded()))
            await state.responses.stop()
            await store.close()
            await state.models.close()

    # FastAPI's own /docs and /redoc load their scripts from a CDN: /docs is served offline instead
    # (api/docs.py) and /redoc not at all.
    app = _App(title="streamserve", version=_version(), lifespan=lifespan, docs_url=None, redoc_url=None,
               description="An OpenAI-compatible LLM inference server built for streaming.")
    app.state.streamserve = state
    install_error_handlers(app, {MESSAGES_PREFIX: anthropic_envelope})
    app.include_router(health_router)
    app.include_router(router)
    app.include_router(models_router)
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


async def _banner_when_ready(state: ServerState, budget: int) -> None:
    assert state.models is not None
    await state.models.preloaded()
    cfg = state.config
    url = f"http://{cfg.host}:{cfg.port}"
    key = " -H \"Authorization: Bearer $STREAMSERVE_API_KEY\"" if cfg.api_key else ""  # never the key itself
    for loaded in state.loaded():
        model = loaded.engine.model
        logger.info("model %s (%s, %s) from %s", loaded.spec.name, model.name, model.architecture, model.path)
        if model.kernels is not None:
            logger.info("%s", model.kernels.describe())
        logger.info("%s: chat template %s; context %d tokens per sequence x %d sequences; queue %d; threads %d",
                    loaded.spec.name, loaded.template.name, loaded.config.max_model_len, loaded.config.max_num_seqs,
                    loaded.config.max_queue, loaded.config.n_threads)
    catalog = state.models.catalog
    logger.info("limits: n<=%d, sequences (prompts x n) per request<=%d, stop strings<=%d; API key %s",
                cfg.max_n, cfg.max_request_sequences, cfg.max_stop_strings,
                "required" if cfg.api_key else "not required")
    logger.info("serving on %s/v1: %s; models loaded on demand within %s", url, ", ".join(catalog.names),
                format_size(budget))
    if cfg.playground:
        logger.info("playground: %s/ in a browser", url)
    logger.info(
        "try: curl %s/v1/chat/completions -H 'Content-Type: application/json'%s -d "
        "'{\"model\": \"%s\", \"messages\": [{\"role\": \"user\", \"content\": \"Hello!\"}], \"stream\": true}'",
        url, key, catalog.names[0],
    )


def _version() -> str:
    from streamserve import __version__

    return __version__
