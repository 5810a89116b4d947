"""serve: a request's model, loaded if it must be, then the route's own response.

A streamed request for a model that is not loaded gets its stream at once: SSE comments (which every
client skips) keep proxies and clients from timing out while the model loads, and an error that comes
after the stream opened is an error event in the API's own shape. A whole response simply waits.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import orjson
from fastapi.responses import Response, StreamingResponse

from streamserve.api.errors import APIError, InternalServerError, InvalidRequestError, api_error
from streamserve.api.loading import LoadedModel
from streamserve.api.protocol.base import KeepAlive
from streamserve.api.state import ServerState
from streamserve.durations import parse_duration as duration
from streamserve.formats import sse
from streamserve.models import ModelRegistry, ModelState, keep_alive_seconds

HEARTBEAT = 2.0
"""Seconds between the comment lines of a stream waiting for its model."""

Respond = Callable[[LoadedModel], Awaitable[Response]]
Failure = Callable[[APIError], bytes]


async def serve(state: ServerState, name: str, respond: Respond, *, stream: bool, failure: Failure,
                keep_alive: float | None = None) -> Response:
    """``respond`` with the model ``name`` means, loading it first if needed (see the module docstring).

    ``failure`` frames an error as the last bytes of a stream that is already open; ``keep_alive`` (a
    request's) becomes the model's from now on.
    """
    registry = state.registry()
    slot = registry.slot(name)
    if not stream or slot.state is ModelState.LOADED:
        async with registry.use(name, keep_alive) as loaded:
            return await respond(loaded)
    return StreamingResponse(_while_loading(registry, name, keep_alive, respond, failure),
                             media_type=sse.MEDIA_TYPE, headers=dict(sse.HEADERS))


async def _while_loading(registry: ModelRegistry[LoadedModel], name: str, keep_alive: float | None,
                         respond: Respond, failure: Failure) -> AsyncIterator[bytes]:
    comment = b": loading " + name.encode(errors="replace").replace(b"\n", b" ") + b"\n\n"
    acquiring = asyncio.ensure_future(registry.acquire(name))
    released = False
    try:
        yield comment  # at once: the client sees the stream open before the load begins
        while not acquiring.done():
            await asyncio.wait({acquiring}, timeout=HEARTBEAT)
            if not acquiring.done():
                yield comment
        try:
            loaded = acquiring.result()
        except Exception as exc:
            yield failure(_as_api_error(exc))
            return
        try:
            response = await respond(loaded)
        except Exception as exc:
            yield failure(_as_api_error(exc))
            return
        finally:
            released = True
            registry.release(name, keep_alive)
        if isinstance(response, StreamingResponse):
            async for chunk in response.body_iterator:
                yield chunk if isinstance(chunk, bytes) else str(chunk).encode()
        else:
            yield failure(_from_response(response))
    finally:
        if not acquiring.done():
            acquiring.cancel()  # the load itself is shielded: it goes on for the others
        elif not released and not acquiring.cancelled() and acquiring.exception() is None:
            registry.release(name, keep_alive)  # the client left as its model became ready


def _as_api_error(exc: Exception) -> APIError:
    error = api_error(exc)
    return error if error is not None else InternalServerError("The server had an error while processing your request.")


def _from_response(response: Response) -> APIError:
    return InternalServerError(f"the response could not be streamed (status {response.status_code})")


def data_only_failure(error: APIError) -> bytes:
    """The end of a data-only stream (Chat, Completions) that failed before its first chunk."""
    return sse.encode(error.to_dict()) + sse.DONE


def named_failure(error: APIError) -> bytes:
    """The end of a named-event stream (Responses) that failed before its first event: an ``error`` event."""
    body = {"type": "error", "code": error.code, "message": error.message, "param": error.param, "sequence_number": 0}
    return sse.named("error", orjson.dumps(body))


def keep_alive(value: KeepAlive) -> float | None:
    """A request's ``keep_alive`` in seconds (``inf``: keep), None when not sent; a 400 when it is not a duration."""
    if value is None:
        return None
    try:
        return keep_alive_seconds(value, duration)
    except ValueError as exc:
        raise InvalidRequestError(f"keep_alive: {exc}", param="keep_alive") from exc
