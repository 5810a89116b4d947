"""BodyLimitMiddleware: refuse request bodies over ``--max-request-bytes`` before reading them.

Starlette's own limit answers in plain text; this one answers in OpenAI's envelope (413
``request_too_large``). A declared ``Content-Length`` over the limit is refused at once, unread; a body
without one is counted as it arrives and refused when it crosses the limit.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from streamserve.api.errors import PayloadTooLargeError, error_response


class BodyTooLargeError(HTTPException):
    """Raised while reading a body that crosses the limit (body parsing lets HTTPException through)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, too_large_message(limit))


def too_large_message(limit: int) -> str:
    """The 413's message."""
    return f"The request body is too large: this server accepts at most {limit} bytes (--max-request-bytes)."


class BodyLimitMiddleware:
    """A pure ASGI middleware (no buffering) limiting every HTTP request body to ``max_bytes``."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await error_response(PayloadTooLargeError(too_large_message(self.max_bytes)), scope)(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLargeError(self.max_bytes)
            return message

        await self.app(scope, limited_receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
