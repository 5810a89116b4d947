"""Errors are raised, not returned: the ``APIError`` hierarchy and the handlers that write OpenAI's envelope.

Every error response is ``{"error": {"message", "type", "param", "code"}}`` with all four keys, so the
official client raises its typed exception (``BadRequestError``, ``NotFoundError``…). An API family with
its own envelope (Anthropic's, under ``/v1/messages``) registers an ``Envelope`` for its path prefix with
``install_error_handlers``; every error on its paths, raised anywhere, is then written in that envelope.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import Scope

from streamserve.engine import EngineError, EngineStoppedError, QueueFullError
from streamserve.moderation import ModerationError
from streamserve.prompting.errors import RequestError

logger = logging.getLogger(__name__)

JSON_PARSE_MESSAGE = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your "
    "HTTP library correctly. The API expects a JSON payload, but what was sent was not valid JSON.)"
)


class APIError(Exception):
    """An error the client should see: HTTP status, OpenAI ``type``, ``code``, ``param`` and ``message``.

    Subclasses fix the status and type and give a default code; ``param`` and ``code`` may be set per
    instance.
    """

    status_code: int = 500
    type: str = "server_error"
    code: str | None = None
    param: str | None = None
    retry_after: int | None = None

    def __init__(
        self, message: str, *, param: str | None = None, code: str | None = None, retry_after: int | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        if param is not None:
            self.param = param
        if code is not None:
            self.code = code
        if retry_after is not None:
            self.retry_after = retry_after

    @property
    def headers(self) -> dict[str, str]:
        """Extra response headers: ``Retry-After`` (whole seconds) when the client should come back later."""
        return {} if self.retry_after is None else {"Retry-After": str(self.retry_after)}

    def to_dict(self) -> dict[str, Any]:
        """The envelope ``{"error": {...}}``, also usable as a mid-stream error event."""
        return error_body(self.message, self.type, self.param, self.code)


class HTTPStatusError(APIError):
    """Any other status Starlette raises (404 for an unknown path, 405…): 5xx are server errors."""

    def __init__(self, status_code: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.type = "server_error" if status_code >= 500 else "invalid_request_error"
        self._headers = dict(headers or {})

    @property
    def headers(self) -> dict[str, str]:
        """The headers Starlette's exception carried (``Allow`` on a 405)."""
        return self._headers


class InvalidRequestError(APIError):
    """400: a request the server understood but will not serve as sent."""

    status_code = 400
    type = "invalid_request_error"


class ContextLengthExceededError(InvalidRequestError):
    """400: prompt plus ``max_tokens`` exceed the model's context; ``param`` defaults to ``messages``."""

    code = "context_length_exceeded"
    param = "messages"


class NotSupportedError(InvalidRequestError):
    """400: a valid OpenAI parameter this server does not support yet (``tools``, ``response_format``…).

    ``code`` is ``unsupported_parameter``, OpenAI's code for a parameter a model does not support;
    ``param`` should name the parameter.
    """

    code = "unsupported_parameter"


class PayloadTooLargeError(APIError):
    """413: the request body is over the server's ``--max-request-bytes``; it was not read further."""

    status_code = 413
    type = "invalid_request_error"
    code = "request_too_large"


class ContentFilterError(InvalidRequestError):
    """400: moderation flagged the request's input (OpenAI's and Azure's code ``content_filter``)."""

    code = "content_filter"


class AuthenticationError(APIError):
    """401: a missing or wrong API key, with OpenAI's type and code for it."""

    status_code = 401
    type = "invalid_request_error"
    code = "invalid_api_key"


class NotFoundError(APIError):
    """404: the requested resource does not exist."""

    status_code = 404
    type = "invalid_request_error"


class ModelNotFoundError(NotFoundError):
    """404: the request's ``model`` is not a name this server serves."""

    code = "model_not_found"
    param = "model"


class ModerationNotConfiguredError(NotFoundError):
    """404: moderation was asked for, but the server runs no moderation policy."""

    code = "model_not_found"
    param = "model"


class RateLimitError(APIError):
    """429: the request queue is full; ``retry_after`` seconds becomes a ``Retry-After`` header.

    Type and code are OpenAI's for a request-rate limit (``requests`` / ``rate_limit_exceeded``); the
    client retries 429s and honours ``Retry-After``.
    """

    status_code = 429
    type = "requests"
    code = "rate_limit_exceeded"
    retry_after = 1


class ServiceUnavailableError(APIError):
    """503: the server is loading the model, draining for a restart or shutting down (with ``Retry-After``)."""

    status_code = 503
    type = "server_error"
    code = "service_unavailable"
    retry_after = 1


class InternalServerError(APIError):
    """500: a bug or an engine failure; the message must not leak internals."""

    status_code = 500
    type = "server_error"


class BodyError(HTTPException):
    """An unusable request body, raised from inside FastAPI's body parsing, which lets only HTTPException out."""

    def __init__(self, error: APIError) -> None:
        super().__init__(error.status_code, error.message)
        self.error = error


class ModerationFailedError(InternalServerError):
    """500: a moderation check could not be completed (a guard model's verdict did not parse…)."""

    code = "moderation_failed"


def error_body(message: str, type_: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    """OpenAI's error envelope with all four keys."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


class _ORJSONResponse(JSONResponse):
    """JSON via orjson (FastAPI's own ORJSONResponse is deprecated)."""

    def render(self, content: Any) -> bytes:
        """Serialize ``content`` with orjson."""
        return orjson.dumps(content)


Envelope = Callable[[APIError, str | None], tuple[int, dict[str, Any]]]
"""An API family's error envelope: (error, request id) -> its status and body."""


def error_response(exc: APIError, scope: Scope | None = None) -> JSONResponse:
    """The JSON response for ``exc``: its status, its headers and the envelope of the path in ``scope``."""
    envelope = _envelope(scope)
    if envelope is None:
        return _ORJSONResponse(exc.to_dict(), status_code=exc.status_code, headers=exc.headers)
    assert scope is not None
    status, body = envelope(exc, scope.get("state", {}).get("request_id"))
    return _ORJSONResponse(body, status_code=status, headers=exc.headers)


def _envelope(scope: Scope | None) -> Envelope | None:
    """The envelope registered for the request's path (the longest matching prefix), if any."""
    app = None if scope is None else scope.get("app")
    envelopes: Mapping[str, Envelope] = getattr(getattr(app, "state", None), "error_envelopes", None) or {}
    path = "" if scope is None else str(scope.get("path", ""))
    for prefix in sorted(envelopes, key=len, reverse=True):
        if path == prefix or path.startswith(prefix + "/"):
            return envelopes[prefix]
    return None


def install_error_handlers(app: FastAPI, envelopes: Mapping[str, Envelope] | None = None) -> None:
    """Register the handlers that turn every error, expected or not, into OpenAI's envelope, or into the
    envelope ``envelopes`` names for the request's path prefix."""
    app.state.error_envelopes = dict(envelopes or {})
    app.add_exception_handler(BodyError, _handle_body_error)
    app.add_exception_handler(APIError, _handle_api_error)
    app.add_exception_handler(RequestError, _handle_request_error)
    app.add_exception_handler(RequestValidationError, _handle_validation_error)
    app.add_exception_handler(EngineError, _handle_engine_error)
    app.add_exception_handler(ModerationError, _handle_moderation_error)
    app.add_exception_handler(HTTPException, _handle_http_exception)
    app.add_exception_handler(Exception, _handle_unexpected)


async def _handle_api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, APIError)
    return error_response(exc, request.scope)


async def _handle_body_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, BodyError)
    return error_response(exc.error, request.scope)


async def _handle_request_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestError)
    return error_response(InvalidRequestError(exc.message, param=exc.param, code=exc.code), request.scope)


async def _handle_engine_error(request: Request, exc: Exception) -> JSONResponse:
    """The one mapping of the engine's errors before a stream began (admission) or in a whole response."""
    if isinstance(exc, QueueFullError):
        return error_response(RateLimitError(f"{exc}; retry shortly.", retry_after=1), request.scope)
    if isinstance(exc, EngineStoppedError):
        return error_response(ServiceUnavailableError(str(exc)), request.scope)
    return error_response(InternalServerError(str(exc)), request.scope)


async def _handle_moderation_error(request: Request, exc: Exception) -> JSONResponse:
    return error_response(ModerationFailedError(f"moderation failed: {exc}"), request.scope)


async def _handle_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(validation_error(exc.errors()), request.scope)


async def _handle_http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 413:
        return error_response(PayloadTooLargeError(str(exc.detail)), request.scope)
    message = f"{exc.detail} ({request.method} {request.url.path})"
    return error_response(HTTPStatusError(exc.status_code, message, exc.headers), request.scope)


async def _handle_unexpected(request: Request, exc: Exception) -> JSONResponse:
    # Starlette re-raises after this handler so the server logs the traceback; log the request here.
    logger.error("unhandled %s on %s %s: %s", type(exc).__name__, request.method, request.url.path, exc)
    return error_response(InternalServerError("The server had an error while processing your request."),
                          request.scope)


# Validation errors → one readable 400

_FIELD_NAME = re.compile(r"[a-z_][a-z0-9_]*")
# Names pydantic adds to a location for the member of a union that failed (``content.str``).
_UNION_TAGS = frozenset({"str", "int", "float", "bool", "bytes", "list", "dict", "none"})


def validation_error(errors: Sequence[Mapping[str, Any]]) -> InvalidRequestError:
    """One 400 for pydantic/FastAPI validation ``errors``; ``param`` is the first error's field path.

    Union members that failed only because the value has another type are dropped when a member of
    the right type reports a more precise error (``stop`` as a list of 5 strings is "too long", not
    "not a string").
    """
    if not errors or any(_is_unparsable_body(e) for e in errors):
        return InvalidRequestError(JSON_PARSE_MESSAGE)
    located = [(_param(e["loc"]), e) for e in errors]
    by_param: dict[str | None, list[Mapping[str, Any]]] = {}
    for param, error in located:
        if not _superseded(param, error, located):
            by_param.setdefault(param, []).append(error)
    message = " ".join(_describe(param, errs) for param, errs in by_param.items())
    return InvalidRequestError(message, param=next(iter(by_param)))


def _is_unparsable_body(error: Mapping[str, Any]) -> bool:
    """Invalid JSON, or no body at all where one is required."""
    if error["type"] == "json_invalid":
        return True
    return tuple(error["loc"]) == ("body",) and error["type"] == "missing"


def _param(loc: Sequence[int | str]) -> str | None:
    """``("body", "messages", 0, "content", "str")`` → ``"messages.0.content"``; the source is dropped."""
    parts = [
        str(part)
        for part in loc[1:]
        if isinstance(part, int) or (_FIELD_NAME.fullmatch(part) and part not in _UNION_TAGS)
    ]
    return ".".join(parts) or None


def _superseded(param: str | None, error: Mapping[str, Any], located: list[tuple[str | None, Any]]) -> bool:
    """A union member's type mismatch, when another member of the same field says something better."""
    return _is_type_mismatch(error) and any(
        not _is_type_mismatch(other) and _within(other_param, param) for other_param, other in located
    )


def _is_type_mismatch(error: Mapping[str, Any]) -> bool:
    """``string_type``, ``list_type``…: the value is not of this union member's type at all."""
    return str(error["type"]).endswith("_type")


def _within(path: str | None, parent: str | None) -> bool:
    """Whether field path ``path`` is ``parent`` or below it (``None`` is the whole body)."""
    if parent is None:
        return True
    return path is not None and (path == parent or path.startswith(parent + "."))


def _describe(param: str | None, errors: list[Mapping[str, Any]]) -> str:
    """The errors of one field in OpenAI's wording (several when no union member matched)."""
    reasons = "; ".join(dict.fromkeys(str(e["msg"]) for e in errors))
    if param is None:
        return f"Invalid request body: {reasons}."
    if errors[0]["type"] == "missing":
        return f"Missing required parameter: '{param}'."
    return f"Invalid '{param}': {reasons}."
