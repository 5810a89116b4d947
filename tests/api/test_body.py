"""Request bodies: size limit, strict JSON, and a 400 naming the field a value cannot be used in."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient

from streamserve.api.body import MAX_DEPTH, JSONRoute, parse_json
from streamserve.api.errors import JSON_PARSE_MESSAGE, BodyError, install_error_handlers
from streamserve.api.limits import BodyLimitMiddleware
from streamserve.api.protocol import ChatCompletionRequest

LIMIT = 64 * 1024


def make_app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=LIMIT)
    router = APIRouter(route_class=JSONRoute)

    @router.post("/v1/chat/completions")
    async def chat(request: ChatCompletionRequest) -> dict[str, Any]:
        return {"model": request.model, "temperature": request.temperature}

    app.include_router(router)
    return app


@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(make_app(), raise_server_exceptions=False)


def post(client: TestClient, raw: bytes) -> Any:
    return client.post("/v1/chat/completions", content=raw, headers={"content-type": "application/json"})


def chat_body(content: str = "hi", **extra: Any) -> str:
    return json.dumps({"model": "m", "messages": [{"role": "user", "content": content}], **extra}, ensure_ascii=False)


def error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]  # type: ignore[no-any-return]


def test_a_valid_body_parses(client: TestClient) -> None:
    response = post(client, chat_body(temperature=0.5).encode())
    assert response.status_code == 200
    assert response.json() == {"model": "m", "temperature": 0.5}


def test_a_body_over_the_limit_is_413_in_openais_envelope(client: TestClient) -> None:
    err = error(post(client, chat_body("x" * (LIMIT + 1)).encode()), 413)
    assert err["type"] == "invalid_request_error" and err["code"] == "request_too_large"
    assert str(LIMIT) in err["message"]


def test_an_undeclared_body_over_the_limit_is_413_too(client: TestClient) -> None:
    chunks = iter([chat_body("x" * LIMIT).encode()[i : i + 4096] for i in range(0, LIMIT + 4096, 4096)])
    response = client.post("/v1/chat/completions", content=chunks, headers={"content-type": "application/json"})
    err = error(response, 413)
    assert err["code"] == "request_too_large"


def test_not_json_keeps_openais_wording(client: TestClient) -> None:
    assert error(post(client, b'{"model": '), 400)["message"] == JSON_PARSE_MESSAGE


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        (chat_body("\\ud800").replace("\\\\ud800", "\\ud800"), "messages.0.content"),
        ('{"model": "\\udfff", "messages": []}', "model"),
        (chat_body(temperature=0.5).replace("0.5", "NaN"), "temperature"),
        (chat_body(temperature=0.5).replace("0.5", "-Infinity"), "temperature"),
        (chat_body(temperature=0.5).replace("0.5", "1e999"), "temperature"),
        ('{"model": "m", "messages": [], "metadata": {"k": [1, 2, NaN]}}', "metadata.k.2"),
    ],
)
def test_unusable_values_are_400s_naming_the_field(client: TestClient, raw: str, param: str) -> None:
    err = error(post(client, raw.encode()), 400)
    assert err["param"] == param
    assert err["type"] == "invalid_request_error"
    assert f"'{param}'" in err["message"]


def test_invalid_utf8_is_a_400(client: TestClient) -> None:
    err = error(post(client, chat_body("caf\u00e9").encode().replace(b"\xc3\xa9", b"\xe9")), 400)
    assert "UTF-8" in err["message"]


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 5000])
def test_absurd_nesting_is_a_400(client: TestClient, depth: int) -> None:
    raw = '{"model": "m", "messages": [], "metadata": ' + "[" * depth + "]" * depth + "}"
    err = error(post(client, raw.encode()), 400)
    assert f"{MAX_DEPTH} levels" in err["message"]


def test_nesting_within_the_limit_parses() -> None:
    depth = MAX_DEPTH - 1
    value = parse_json(("[" * depth + "]" * depth).encode())
    for _ in range(depth - 1):
        value = value[0]
    assert value == []


def test_parse_json_raises_body_errors_with_the_api_error() -> None:
    with pytest.raises(BodyError) as caught:
        parse_json(b'{"a": NaN}')
    assert caught.value.error.param == "a"
    assert caught.value.status_code == 400
