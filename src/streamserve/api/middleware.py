"""A pure ASGI middleware that gives every response an ``x-request-id`` (no BaseHTTPMiddleware: it buffers)."""

from __future__ import annotations

import re
import uuid

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_REQUEST_ID_BYTES = 512
# What a header value may hold and an HTTP/1.1 server can send back: visible ASCII, obs-text
# (bytes 0x80-0xFF, such as UTF-8), and spaces or tabs between them; no control characters.
_USABLE = re.compile(rb"[\x21-\x7e\x80-\xff](?:[\x20\x09\x21-\x7e\x80-\xff]*[\x21-\x7e\x80-\xff])?")


def usable_request_id(value: bytes) -> bool:
    """Whether an incoming ``x-request-id`` is echoed as sent.

    The rule: 1 to ``MAX_REQUEST_ID_BYTES`` bytes of visible ASCII or non-ASCII bytes (UTF-8 or
    any other), with spaces or tabs only between them. Anything else (empty, too long, control
    characters) is replaced by a generated ``req-<24 hex digits>``, never cut or re-encoded.
    """
    return len(value) <= MAX_REQUEST_ID_BYTES and _USABLE.fullmatch(value) is not None


class RequestIdMiddleware:
    """Echoes an incoming ``x-request-id`` byte for byte, or makes one, on every response.

    The id goes into ``scope["state"]["request_id"]`` as text for logs (UTF-8, undecodable bytes
    as backslash escapes). Installed outside Starlette's error middleware, so 500s carry it too.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = next((value for name, value in scope["headers"] if name == b"x-request-id"), b"")
        raw = incoming if usable_request_id(incoming) else f"req-{uuid.uuid4().hex[:24]}".encode()
        scope.setdefault("state", {})["request_id"] = raw.decode("utf-8", errors="backslashreplace")

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                message["headers"] = [*headers, (b"x-request-id", raw)]
            await send(message)

        await self.app(scope, receive, send_with_id)


def request_id(request: Request, default: str) -> str:
    """The id ``RequestIdMiddleware`` gave this request (``default`` outside the middleware, as in unit tests)."""
    return str(request.scope.get("state", {}).get("request_id", default))
