"""Errors under /v1/messages are in Anthropic's envelope with Anthropic's statuses; the OpenAI routes keep theirs.
And ``x-api-key`` is a key like ``Authorization: Bearer``."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from streamserve.api.anthropic import MESSAGES_PREFIX, anthropic_envelope
from streamserve.api.anthropic.protocol import MessagesRequest
from streamserve.api.auth import require_api_key
from streamserve.api.errors import (
    APIError,
    InternalServerError,
    InvalidRequestError,
    ModelNotFoundError,
    RateLimitError,
    ServiceUnavailableError,
    install_error_handlers,
)
from streamserve.api.limits import BodyLimitMiddleware
from streamserve.api.middleware import RequestIdMiddleware

RAISED: dict[str, Exception] = {
    "invalid": InvalidRequestError("bad", param="messages"),
    "model": ModelNotFoundError("The model 'x' does not exist."),
    "ratelimit": RateLimitError("queue full", retry_after=3),
    "unavailable": ServiceUnavailableError("loading"),
    "internal": InternalServerError("oops"),
    "bug": RuntimeError("secret internal detail"),
}


def _app() -> FastAPI:
    app = FastAPI()
    app.state.streamserve = SimpleNamespace(config=SimpleNamespace(api_key="sk-key"))
    install_error_handlers(app, {MESSAGES_PREFIX: anthropic_envelope})
    app.add_middleware(BodyLimitMiddleware, max_bytes=2000)

    @app.get("/v1/messages/raise/{name}")
    @app.get("/v1/chat/raise/{name}")
    async def raise_it(name: str) -> None:
        raise RAISED[name]

    @app.post("/v1/messages")
    async def create(body: MessagesRequest) -> dict[str, str]:
        return {"ok": body.model}

    @app.get("/v1/messages/keyed", dependencies=[Depends(require_api_key)])
    async def keyed() -> dict[str, bool]:
        return {"ok": True}

    app.add_middleware(RequestIdMiddleware)  # outermost: the envelope's request_id is its id
    return app


@pytest.fixture(scope="module")
def http() -> TestClient:
    return TestClient(_app(), raise_server_exceptions=False)


@pytest.mark.parametrize(("name", "status", "kind"), [
    ("invalid", 400, "invalid_request_error"), ("model", 404, "not_found_error"),
    ("ratelimit", 429, "rate_limit_error"), ("unavailable", 503, "overloaded_error"),
    ("internal", 500, "api_error"), ("bug", 500, "api_error"),
])
def test_errors_on_messages_paths_are_in_anthropics_envelope(http: TestClient, name: str, status: int,
                                                            kind: str) -> None:
    response = http.get(f"/v1/messages/raise/{name}", headers={"x-request-id": "req-abc"})
    assert response.status_code == status
    body = response.json()
    assert body["type"] == "error" and body["error"]["type"] == kind and body["request_id"] == "req-abc"
    assert set(body) == {"type", "error", "request_id"} and set(body["error"]) == {"type", "message"}
    assert "secret" not in body["error"]["message"]
    if name == "ratelimit":
        assert response.headers["retry-after"] == "3"


def test_the_openai_routes_keep_openais_envelope(http: TestClient) -> None:
    body = http.get("/v1/chat/raise/invalid").json()
    assert body == {"error": {"message": "bad", "type": "invalid_request_error", "param": "messages", "code": None}}


def test_validation_unknown_paths_and_oversized_bodies_too(http: TestClient) -> None:
    missing = http.post("/v1/messages", json={"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    assert missing.status_code == 400
    assert missing.json()["error"] == {"type": "invalid_request_error",
                                       "message": "Missing required parameter: 'max_tokens'."}
    unknown = http.get("/v1/messages/batches/x")
    assert unknown.status_code == 404 and unknown.json()["error"]["type"] == "not_found_error"
    large = http.post("/v1/messages", content=b"x" * 3000, headers={"content-type": "application/json"})
    assert large.status_code == 413 and large.json()["error"]["type"] == "request_too_large"
    assert http.post("/v1/chat/raise/x", content=b"x" * 3000).json()["error"]["code"] == "request_too_large"


def test_x_api_key_is_accepted_like_a_bearer_token(http: TestClient) -> None:
    assert http.get("/v1/messages/keyed", headers={"x-api-key": "sk-key"}).status_code == 200
    assert http.get("/v1/messages/keyed", headers={"authorization": "Bearer sk-key"}).status_code == 200
    wrong = http.get("/v1/messages/keyed", headers={"x-api-key": "sk-other", "anthropic-version": "2023-06-01"})
    assert wrong.status_code == 401 and wrong.json()["error"]["type"] == "authentication_error"
    assert http.get("/v1/messages/keyed").status_code == 401


def test_an_api_error_renders_its_own_status() -> None:
    status, body = anthropic_envelope(APIError("teapot"), None)
    assert status == 500 and body == {"type": "error", "error": {"type": "api_error", "message": "teapot"}}
