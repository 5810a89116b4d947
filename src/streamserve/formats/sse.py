"""Server-sent events framing: the only module that writes ``data: …\\n\\n``.

Every event is one ``data:`` line of compact JSON (which never holds a raw newline), the stream
ends with ``[DONE]``, and keep-alives are ``:`` comments, which the OpenAI client skips. The
Responses API names each event (``event: <type>`` before its ``data:`` line) and sends no ``[DONE]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import orjson
from pydantic import BaseModel

MEDIA_TYPE = "text/event-stream"
"""The ``Content-Type`` of a streaming response."""

HEADERS: Mapping[str, str] = MappingProxyType({"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
"""Response headers that stop proxies (nginx) and caches from buffering the stream."""

DONE: bytes = b"data: [DONE]\n\n"
"""The last event of every stream; nothing follows it."""

KEEPALIVE: bytes = b": keep-alive\n\n"
"""An SSE comment that keeps idle connections open without producing a client-visible event."""


def encode(payload: BaseModel | Mapping[str, Any]) -> bytes:
    """Frame one JSON event; a model keeps its explicit nulls (``finish_reason: null`` matters)."""
    if isinstance(payload, BaseModel):
        body = payload.model_dump_json().encode()
    else:
        body = orjson.dumps(payload if isinstance(payload, dict) else dict(payload))
    return b"data: " + body + b"\n\n"


def named(event_type: str, data: bytes) -> bytes:
    """Frame one named event from its already serialized compact JSON (the Responses API's framing)."""
    return b"event: " + event_type.encode() + b"\ndata: " + data + b"\n\n"
