"""ServerState: what the routes share: the engine once loaded, the template, names and limits."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from streamserve.api.errors import ModelNotFoundError, ServiceUnavailableError
from streamserve.api.metrics import Metrics
from streamserve.api.moderation import ModerationService
from streamserve.api.params import Limits
from streamserve.config import ServerConfig
from streamserve.engine import EngineClient
from streamserve.prompting.templates import ChatTemplate

if TYPE_CHECKING:
    from streamserve.api.responses import ResponsesService


@dataclass
class LoadedModel:
    """The engine over the loaded model, with the chat template and per-request limits."""

    engine: EngineClient
    template: ChatTemplate
    limits: Limits
    fingerprint: str
    stop_ids: frozenset[int]
    moderation: ModerationService | None = None


@dataclass
class ServerState:
    """Shared by every request; ``loaded`` is None until the model is ready (``/health`` says 503).

    ``responses`` (the Responses API over the response store) is set once the store is open.
    """

    config: ServerConfig
    model_names: tuple[str, ...]
    metrics: Metrics
    created: int = field(default_factory=lambda: int(time.time()))
    loaded: LoadedModel | None = None
    load_error: str | None = None
    draining: bool = False
    shutting_down: bool = False
    responses: ResponsesService | None = None

    @property
    def status(self) -> str:
        """``/health``'s status: ``ok``, ``loading``, ``error``, ``draining`` or ``shutting_down``."""
        if self.shutting_down:
            return "shutting_down"
        if self.draining:
            return "draining"
        if self.loaded is None:
            return "error" if self.load_error else "loading"
        return "ok"

    def ready(self) -> LoadedModel:
        """The loaded model, or a 503 (with ``Retry-After``) while loading, draining or shutting down."""
        if self.draining or self.shutting_down:
            raise ServiceUnavailableError("The server is shutting down; retry on another instance or shortly.")
        if self.loaded is None:
            raise ServiceUnavailableError(self.load_error or "The model is still loading; retry shortly.")
        return self.loaded

    def check_model(self, name: str) -> None:
        """404 unless ``name`` is one of the served model names (aliases of the one model)."""
        if name not in self.model_names:
            raise ModelNotFoundError(
                f"The model '{name}' does not exist on this server. Served: {', '.join(self.model_names)}."
            )
