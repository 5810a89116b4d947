"""Anthropic's error envelope for every error on its paths: ``{"type": "error", "error": {type, message}}``.

Statuses and types follow https://docs.anthropic.com/en/api/errors: 400 ``invalid_request_error``, 401
``authentication_error``, 403 ``permission_error``, 404 ``not_found_error``, 413 ``request_too_large``, 429
``rate_limit_error``, 500 ``api_error``. A 503 (the model loading, the server draining or shutting down) stays
a 503, with ``Retry-After``, typed ``overloaded_error``: Anthropic's word for "temporarily unable, retry".
The body carries the request's id as ``request_id``, as Anthropic's does.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from streamserve.api.errors import APIError
from streamserve.formats.anthropic import error_event

ERROR_TYPES: Mapping[int, str] = MappingProxyType({
    400: "invalid_request_error", 401: "authentication_error", 403: "permission_error", 404: "not_found_error",
    413: "request_too_large", 429: "rate_limit_error", 500: "api_error", 503: "overloaded_error",
    529: "overloaded_error",
})


def error_type(status: int) -> str:
    """Anthropic's ``error.type`` for a status (other 4xx: ``invalid_request_error``; other 5xx: ``api_error``)."""
    return ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")


def anthropic_envelope(error: APIError, request_id: str | None) -> tuple[int, dict[str, Any]]:
    """The status and body of ``error`` on a ``/v1/messages`` path."""
    body = error_event(error_type(error.status_code), error.message)
    if request_id is not None:
        body["request_id"] = request_id
    return error.status_code, body
