"""The Responses API (``/v1/responses``): routes, the service over the response store, runs and replay."""

from streamserve.api.responses.routes import router
from streamserve.api.responses.service import ResponsesService, Retention

__all__ = ["ResponsesService", "Retention", "router"]
