"""Error handlers: every failure becomes OpenAI's envelope with the right status, type, code and param."""

from __future__ import annotations

import logging
from typing import Any, Protocol

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from streamserve.api.errors import (
    JSON_PARSE_MESSAGE,
    APIError,
    AuthenticationError,
    ContextLengthExceededError,
    InternalServerError,
    InvalidRequestError,
    ModelNotFoundError,
    NotFoundError,
    NotSupportedError,
    RateLimitError,
    ServiceUnavailableError,
    error_response,
    install_error_handlers,
)
from streamserve.api.protocol import ChatCompletionRequest
from streamserve.prompting.errors import RequestError

RAISED: dict[str, Exception] = {
    "invalid": InvalidRequestError("bad"),
    "context": ContextLengthExceededError("too long"),
    "unsupported": NotSupportedError("'tools' is not supported yet", param="tools"),
    "auth": AuthenticationError("Incorrect API key provided."),
    "notfound": NotFoundError("no such thing"),
    "model": ModelNotFoundError("The model 'x' does not exist."),
    "ratelimit": RateLimitError("queue full", retry_after=3),
    "unavailable": ServiceUnavailableError("loading"),
    "internal": InternalServerError("oops"),
    "request_error": RequestError("at most 4 stop strings", param="stop", code="too_many_stops"),
    "bug": RuntimeError("secret internal detail"),
}


class Response(Protocol):
    """What the tests read of a TestClient response (httpx or httpx2, depending on Starlette)."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> Any: ...

    def json(self) -> Any: ...


def make_app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/v1/chat/completions")
    async def chat(request: ChatCompletionRequest) -> dict[str, str]:
        return {"model": request.model}

    @app.get("/raise/{name}")
    async def raise_(name: str) -> None:
        raise RAISED[name]

    return app


@pytest.fixture(scope="module")
def client() -> TestClient:
    # Starlette re-raises unhandled exceptions after the 500 handler ran; the server would log them.
    return TestClient(make_app(), raise_server_exceptions=False)


def envelope(response: Response) -> dict[str, Any]:
    body = response.json()
    assert list(body) == ["error"]
    assert list(body["error"]) == ["message", "type", "param", "code"]
    error: dict[str, Any] = body["error"]
    return error


def post_chat(client: TestClient, **fields: Any) -> Response:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], **fields}
    return client.post("/v1/chat/completions", json=body)


def test_valid_request_passes(client: TestClient) -> None:
    response = post_chat(client, temperature=0.5)
    assert response.status_code == 200 and response.json() == {"model": "m"}


@pytest.mark.parametrize("content", [b"{not json", b"", b'{"model": "m",}'])
def test_unparsable_body_is_400_with_openai_message(client: TestClient, content: bytes) -> None:
    response = client.post(
        "/v1/chat/completions", content=content, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert envelope(response) == {
        "message": JSON_PARSE_MESSAGE,
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }


def test_body_that_is_not_an_object_is_400_without_param(client: TestClient) -> None:
    response = client.post("/v1/chat/completions", json=[1, 2])
    assert response.status_code == 400
    error = envelope(response)
    assert error["param"] is None and error["message"].startswith("Invalid request body")


@pytest.mark.parametrize(
    ("fields", "param", "fragment"),
    [
        ({"temperature": "hot"}, "temperature", "valid number"),
        ({"temperature": 3}, "temperature", "less than or equal to 2"),
        ({"top_logprobs": 21}, "top_logprobs", "less than or equal to 20"),
        ({"messages": []}, "messages", "at least 1"),
        ({"messages": [{"role": "bot", "content": "x"}]}, "messages.0.role", "'assistant'"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages.0.content", "valid string"),
        ({"messages": [{"role": "user", "content": [{"type": "text"}]}]}, "messages.0.content.0.text", ""),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop", "at most 4"),
        ({"logit_bias": {"50256": 200}}, "logit_bias", "less than or equal to 100"),
        ({"stream_options": {"include_usage": "x"}}, "stream_options.include_usage", "valid boolean"),
    ],
)
def test_invalid_field_is_400_naming_the_param(
    client: TestClient, fields: dict[str, Any], param: str, fragment: str
) -> None:
    response = post_chat(client, **fields)
    assert response.status_code == 400
    error = envelope(response)
    assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", param, None)
    assert f"'{param}'" in error["message"] and fragment in error["message"]


def test_union_type_mismatch_is_not_reported_when_a_better_error_exists(client: TestClient) -> None:
    message = envelope(post_chat(client, stop=["a"] * 5))["message"]
    assert "valid string" not in message


def test_missing_field_uses_openai_wording(client: TestClient) -> None:
    response = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}]})
    assert response.status_code == 400
    error = envelope(response)
    assert error["param"] == "model"
    assert error["message"] == "Missing required parameter: 'model'."


def test_unknown_route_is_404_envelope(client: TestClient) -> None:
    response = client.post("/v1/nothing", json={})
    assert response.status_code == 404
    error = envelope(response)
    assert error["type"] == "invalid_request_error"
    assert "POST /v1/nothing" in error["message"]


def test_wrong_method_is_405_envelope_with_allow_header(client: TestClient) -> None:
    response = client.get("/v1/chat/completions")
    assert response.status_code == 405
    assert envelope(response)["type"] == "invalid_request_error"
    assert response.headers["allow"] == "POST"


@pytest.mark.parametrize(
    ("name", "status", "type_", "param", "code"),
    [
        ("invalid", 400, "invalid_request_error", None, None),
        ("context", 400, "invalid_request_error", "messages", "context_length_exceeded"),
        ("unsupported", 400, "invalid_request_error", "tools", "unsupported_parameter"),
        ("auth", 401, "invalid_request_error", None, "invalid_api_key"),
        ("notfound", 404, "invalid_request_error", None, None),
        ("model", 404, "invalid_request_error", "model", "model_not_found"),
        ("ratelimit", 429, "requests", None, "rate_limit_exceeded"),
        ("unavailable", 503, "server_error", None, "service_unavailable"),
        ("internal", 500, "server_error", None, None),
        ("request_error", 400, "invalid_request_error", "stop", "too_many_stops"),
    ],
)
def test_raised_errors_become_envelopes(
    client: TestClient, name: str, status: int, type_: str, param: str | None, code: str | None
) -> None:
    response = client.get(f"/raise/{name}")
    assert response.status_code == status
    error = envelope(response)
    assert (error["type"], error["param"], error["code"]) == (type_, param, code)
    assert error["message"] == str(RAISED[name])


def test_rate_limit_and_unavailable_send_retry_after(client: TestClient) -> None:
    response = client.get("/raise/ratelimit")
    assert response.headers["retry-after"] == "3"
    assert client.get("/raise/unavailable").headers["retry-after"] == "1"
    assert "retry-after" not in client.get("/raise/invalid").headers


def test_unexpected_exception_is_500_without_leaking_details(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="streamserve.api.errors"):
        response = client.get("/raise/bug")
    assert response.status_code == 500
    error = envelope(response)
    assert error["type"] == "server_error"
    assert "secret" not in error["message"]
    assert "RuntimeError" in caplog.text and "/raise/bug" in caplog.text


def test_param_and_code_overrides_per_instance() -> None:
    exc = ContextLengthExceededError("too long", param="prompt")
    assert (exc.param, exc.code) == ("prompt", "context_length_exceeded")
    assert NotSupportedError("no", code="unsupported_value").code == "unsupported_value"
    assert ContextLengthExceededError("x").param == "messages"


def test_error_response_and_to_dict() -> None:
    exc: APIError = RateLimitError("busy", retry_after=7)
    response = error_response(exc)
    assert response.status_code == 429 and response.headers["retry-after"] == "7"
    assert response.body == (
        b'{"error":{"message":"busy","type":"requests","param":null,"code":"rate_limit_exceeded"}}'
    )
    assert exc.to_dict()["error"]["message"] == "busy"


def test_several_invalid_fields_are_all_named_and_param_is_the_first(client: TestClient) -> None:
    error = envelope(post_chat(client, temperature=9, n=0))
    assert error["param"] == "n"
    assert "'n'" in error["message"] and "'temperature'" in error["message"]
    union = envelope(post_chat(client, messages=[{"role": "user", "content": 5}]))["message"]
    assert union.count("'messages.0.content'") == 1 and "valid list" in union
