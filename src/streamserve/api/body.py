"""Request bodies: JSON parsed strictly and fast, with a 400 that names the field a value cannot be used in.

orjson refuses what no model can use (lone surrogates such as ``"\\ud800"``, which JavaScript clients send
when they cut a string inside an emoji; ``NaN``/``Infinity``; numbers too large for a double; invalid
UTF-8). Only when it refuses does the stricter path run: the standard parser reads the body so the error
can say which field holds the bad value. Nesting deeper than ``MAX_DEPTH`` is refused before any code
recurses into it. The size limit is FastAPI's own (``max_body_size``), checked before this.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import orjson
from fastapi import Request, Response
from fastapi.routing import APIRoute

from streamserve.api.errors import APIError, BodyError, InvalidRequestError

MAX_DEPTH = 64
"""Deepest nesting of arrays and objects a request may have (OpenAI's strict schemas allow 10 levels)."""


def parse_json(body: bytes) -> Any:
    """The body's JSON value; ``json.JSONDecodeError`` if it is not JSON, ``BodyError`` if a value is unusable."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if "depth limit" in str(exc):
            raise _too_deep() from None
        refused = _locate_refused(body)
        if refused is None:
            raise  # not JSON at all: FastAPI's own 400 (OpenAI's wording, see errors.JSON_PARSE_MESSAGE)
        raise BodyError(refused) from None
    if body.count(b"[") + body.count(b"{") >= MAX_DEPTH and _depth(value) > MAX_DEPTH:
        raise _too_deep()
    return value


def _locate_refused(body: bytes) -> APIError | None:
    """Why orjson refused ``body``, naming the field, when the standard parser can read it."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _invalid(None, f"the request body is not valid UTF-8 (byte {exc.start})")
    try:
        value = json.loads(text, parse_constant=float)
    except (ValueError, RecursionError):
        return None
    for path, item in _leaves(value, ()):
        if isinstance(item, float) and not math.isfinite(item):
            return _invalid(path, "numbers must be finite (NaN and Infinity are not JSON)")
        if isinstance(item, str) and not _encodable(item):
            return _invalid(path, "the string contains a lone surrogate (an unpaired \\ud800-\\udfff escape)")
    return None


def _leaves(value: Any, path: tuple[str | int, ...]) -> Iterator[tuple[tuple[str | int, ...], Any]]:
    """Every scalar and every object key in ``value`` with its path (keys are reported at their object)."""
    stack = [(path, value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, dict):
            for key, child in reversed(item.items()):
                yield path, key
                stack.append(((*path, key), child))
        elif isinstance(item, list):
            stack.extend(((*path, i), child) for i, child in reversed(list(enumerate(item))))
        else:
            yield path, item


def _depth(value: Any) -> int:
    """The nesting depth of arrays and objects in ``value``, without recursion."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            if depth <= MAX_DEPTH:
                children = item.values() if isinstance(item, dict) else item
                stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return deepest


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _invalid(path: tuple[str | int, ...] | None, reason: str) -> InvalidRequestError:
    if not path:
        return InvalidRequestError(f"Invalid request body: {reason}.")
    param = ".".join(str(part) for part in path)
    return InvalidRequestError(f"Invalid '{param}': {reason}.", param=param)


def _too_deep() -> BodyError:
    return BodyError(_invalid(None, f"arrays and objects are nested more than {MAX_DEPTH} levels deep"))


class JSONRequest(Request):
    """A request whose ``json()`` is ``parse_json``: what FastAPI validates the body from."""

    async def json(self) -> Any:
        """The parsed body, parsed once."""
        if not hasattr(self, "_json"):
            self._json = parse_json(await self.body())
        return self._json


class JSONRoute(APIRoute):
    """A route that parses its JSON body with ``parse_json`` (set as a router's ``route_class``)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """FastAPI's handler, given a ``JSONRequest``."""
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            return await handler(JSONRequest(request.scope, request.receive))

        return handle
