"""Fuzzing from the server's own OpenAPI schema: valid and invalid requests, never a 5xx, always the envelope.

schemathesis generates requests for every operation in ``/openapi.json``, both schema-valid (positive)
and schema-violating (negative). A small context (``--max-model-len 64``) bounds every generation, and the
number of examples bounds the run to well under a minute.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.serverproc import ServerProcess, running_server

pytestmark = pytest.mark.e2e

EXAMPLES_PER_OPERATION = 30
MODEL = "smollm2-135m-instruct"


@pytest.fixture(scope="module")
def fuzz_server() -> Iterator[ServerProcess]:
    with running_server("--max-model-len", "64", "--max-num-seqs", "4", "--max-queue", "64") as process:
        yield process


def check(response: Any, what: str, path: str = "") -> None:
    """No 5xx; an error is exactly OpenAI's envelope (Anthropic's under /v1/messages)."""
    assert response.status_code < 500, f"{what} -> {response.status_code}: {response.text}"
    if response.status_code >= 400:
        body = response.json()
        if path.startswith("/v1/messages"):
            assert set(body) == {"type", "error", "request_id"} and body["type"] == "error", body
            assert set(body["error"]) == {"type", "message"}, body
        else:
            assert set(body) == {"error"}, body
            assert set(body["error"]) == {"message", "type", "param", "code"}, body
        assert body["error"]["message"]


@pytest.mark.parametrize("mode", [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE])
def test_no_request_gets_a_5xx_and_every_error_is_in_its_apis_envelope(fuzz_server: ServerProcess, mode: Any) -> None:
    statuses: dict[int, int] = {}
    api = schemathesis.openapi.from_url(fuzz_server.url + "/openapi.json")
    operations = [result.ok() for result in api.get_all_operations()]
    assert {op.path for op in operations} >= {"/v1/chat/completions", "/v1/completions", "/v1/models"}
    if mode is schemathesis.GenerationMode.NEGATIVE:  # only a body can be invalid: the rest take none
        operations = [op for op in operations if op.body]
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck),
                  database=None)
        def fuzz(case: Any) -> None:
            if isinstance(case.body, dict) and "model" in case.body:
                case.body["model"] = MODEL  # past the model check, into validation and generation
            response = case.call(timeout=60)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            check(response, f"{case.method} {case.formatted_path}", case.formatted_path)

        fuzz()
    print(f"fuzz {mode.value}: status counts {dict(sorted(statuses.items()))}")
    assert sum(statuses.values()) >= EXAMPLES_PER_OPERATION


def test_the_server_is_alive_after_the_fuzzing(fuzz_server: ServerProcess) -> None:
    assert httpx.get(fuzz_server.url + "/health", timeout=10).status_code == 200
    reply = httpx.post(fuzz_server.base_url + "/completions", timeout=60,
                       json={"model": "smollm2-135m-instruct", "prompt": "1, 2,", "max_tokens": 3})
    assert reply.status_code == 200
    assert "Traceback" not in fuzz_server.log()
