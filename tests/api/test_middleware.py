"""The outer layers: every response, a 500 from the error middleware included, carries x-request-id and CORS.

The app is the real one from ``create_app``; its lifespan is not run (no model), which is enough for
the middleware: ``/health`` answers 503 while "loading", and a test route raises.
"""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from streamserve.api.app import create_app
from streamserve.api.middleware import MAX_REQUEST_ID_BYTES, usable_request_id
from streamserve.config import ServerConfig
from streamserve.models import build_catalog

ORIGIN = "https://chat.example"


@pytest.fixture(scope="module")
def app() -> FastAPI:
    application = create_app(ServerConfig(models=build_catalog(["unused"]), allowed_origins=(ORIGIN,)))

    async def boom() -> None:
        raise RuntimeError("secret internal detail")

    application.add_api_route("/boom", boom)
    return application


@pytest.fixture(scope="module")
def client(app: FastAPI) -> TestClient:
    return TestClient(app, raise_server_exceptions=False)


def test_an_unhandled_error_is_a_500_envelope_with_request_id_and_cors(client: TestClient) -> None:
    response = client.get("/boom", headers={"Origin": ORIGIN, "x-request-id": "trace-500"})
    assert response.status_code == 500
    assert response.json()["error"]["type"] == "server_error"
    assert "secret" not in response.text
    assert response.headers["x-request-id"] == "trace-500"
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert "x-request-id" in response.headers["access-control-expose-headers"]


@pytest.mark.parametrize("path", ["/health", "/v1/models", "/no/such/route"])
def test_every_response_carries_the_headers(client: TestClient, path: str) -> None:
    response = client.get(path, headers={"Origin": ORIGIN})
    assert response.status_code in (200, 404, 503)
    assert response.headers["x-request-id"].startswith("req-")
    assert response.headers["access-control-allow-origin"] == ORIGIN


def test_a_cors_preflight_carries_a_request_id(client: TestClient) -> None:
    response = client.options("/v1/chat/completions", headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert response.headers["x-request-id"].startswith("req-")


@pytest.mark.parametrize("sent", [
    b"abc-123", b"a b\tc", b"x" * MAX_REQUEST_ID_BYTES, b"{\"json\": \"ids\", \"too\": [1,2]}",
])  # non-ASCII ids: tests/e2e/test_fairness.py, since the test client cannot carry them
def test_a_usable_request_id_is_echoed_byte_for_byte(client: TestClient, sent: bytes) -> None:
    response = client.get("/health", headers={"x-request-id": sent})
    assert response.headers.raw and dict(response.headers.raw)[b"x-request-id"] == sent


@pytest.mark.parametrize("sent", [b"", b"x" * (MAX_REQUEST_ID_BYTES + 1)])
def test_an_unusable_request_id_is_replaced_not_cut(client: TestClient, sent: bytes) -> None:
    response = client.get("/health", headers={"x-request-id": sent})
    echoed = dict(response.headers.raw)[b"x-request-id"]
    assert echoed.startswith(b"req-") and len(echoed) == 28


@pytest.mark.parametrize(("value", "usable"), [
    (b"a", True), (b" a", False), (b"a ", False), (b"a\x00b", False), (b"a\nb", False), (b"a\x7fb", False),
    (b"\x80", True), (b"", False),
])
def test_usable_request_id_rule(value: bytes, usable: bool) -> None:
    assert usable_request_id(value) is usable
