"""ServerState: what the routes share: the models (loaded on demand), the metrics, the draining flags."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from streamserve.api.errors import ServiceUnavailableError
from streamserve.api.loading import LoadedModel
from streamserve.api.metrics import Metrics
from streamserve.config import ServerConfig
from streamserve.models import ModelRegistry, ModelState

if TYPE_CHECKING:
    from streamserve.api.responses import ResponsesService

__all__ = ["LoadedModel", "ServerState"]


@dataclass
class ServerState:
    """Shared by every request. ``models`` is set when the app starts (its lifespan), ``responses`` (the
    Responses API over the response store) once the store is open."""

    config: ServerConfig
    metrics: Metrics
    created: int = field(default_factory=lambda: int(time.time()))
    models: ModelRegistry[LoadedModel] | None = None
    draining: bool = False
    shutting_down: bool = False
    responses: ResponsesService | None = None

    @property
    def status(self) -> str:
        """``/health``'s status: ``ok``, ``loading`` (a model loaded at start is not yet), ``error`` (its load
        failed), ``draining`` or ``shutting_down``. Models loaded on demand never make it 503."""
        if self.shutting_down:
            return "shutting_down"
        if self.draining:
            return "draining"
        if self.models is None:
            return "loading"
        starting = [s for s in self.models.slots.values() if s.spec.preload and s.loads == 0]
        if any(s.error for s in starting if s.state is not ModelState.LOADING):
            return "error"
        if starting:
            return "loading"
        return "ok"

    def registry(self) -> ModelRegistry[LoadedModel]:
        """The models, or a 503 (with ``Retry-After``) while draining or shutting down."""
        if self.draining or self.shutting_down or self.models is None:
            raise ServiceUnavailableError("The server is shutting down; retry on another instance or shortly.")
        return self.models

    def loaded(self) -> list[LoadedModel]:
        """The models loaded this moment."""
        if self.models is None:
            return []
        return [s.loaded for s in self.models.slots.values() if s.loaded is not None]
