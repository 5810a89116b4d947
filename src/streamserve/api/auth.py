"""API-key check for the ``/v1`` routes (``--api-key`` or ``STREAMSERVE_API_KEY``)."""

from __future__ import annotations

import secrets

from fastapi import Request

from streamserve.api.errors import AuthenticationError


async def require_api_key(request: Request) -> None:
    """401 unless the request carries ``Authorization: Bearer <key>`` or ``x-api-key: <key>`` (what Anthropic's
    clients send) when a key is configured."""
    expected = request.app.state.streamserve.config.api_key
    if not expected:
        return
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and secrets.compare_digest(key.strip().encode(), expected.encode()):
        return
    header = request.headers.get("x-api-key")
    if header is not None and secrets.compare_digest(header.strip().encode(), expected.encode()):
        return
    raise AuthenticationError("Incorrect API key provided. Pass it as 'Authorization: Bearer <key>' or "
                              "'x-api-key: <key>'.")
