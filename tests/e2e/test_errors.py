"""Errors before the first byte, as the official client sees them: typed exceptions, the OpenAI envelope.

One server for the module, started with ``--api-key sk-test`` (so the auth tests have something to
refuse) and ``--max-model-len 256`` (so the context-length check is cheap to reach). The client never
retries (``max_retries=0``): a 429 or 5xx must surface as sent. The last test checks the server is
still alive and answering after all of this.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from tests.e2e.ssewire import MODEL
from tests.serverproc import ServerProcess, running_server

pytestmark = pytest.mark.e2e

KEY = "sk-test"
CTX = 256
MESSAGES: list[Any] = [{"role": "user", "content": "Say hello."}]
ENVELOPE_KEYS = {"message", "type", "param", "code"}


@pytest.fixture(scope="module")
def keyed_server() -> Iterator[ServerProcess]:
    with running_server("--api-key", KEY, "--max-model-len", str(CTX),
                        "--served-model-name", f"smollm2-135m-instruct,{MODEL}") as process:
        yield process


@pytest.fixture(scope="module")
def client(keyed_server: ServerProcess) -> Iterator[OpenAI]:
    with OpenAI(base_url=keyed_server.base_url, api_key=KEY, max_retries=0, timeout=60) as openai_client:
        yield openai_client


@pytest.fixture(scope="module")
def http(keyed_server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=keyed_server.url, timeout=60) as raw:
        yield raw


def envelope(response: httpx.Response) -> dict[str, Any]:
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body.keys() == {"error"}
    error: dict[str, Any] = body["error"]
    assert error.keys() == ENVELOPE_KEYS
    assert isinstance(error["message"], str) and error["message"]
    return error


def sdk_error(exc: openai.APIStatusError) -> dict[str, Any]:
    """The envelope the SDK received, checked for all four keys."""
    return envelope(exc.response)


# --- model ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_unknown_model_is_404_model_not_found(client: OpenAI, stream: bool) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="no-such-model", messages=MESSAGES, max_tokens=4, stream=stream)
    assert info.value.status_code == 404
    assert info.value.code == "model_not_found"
    assert sdk_error(info.value)["code"] == "model_not_found"


def test_unknown_model_on_completions(client: OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.completions.create(model="no-such-model", prompt="Hi", max_tokens=4)
    assert info.value.code == "model_not_found"


def test_alias_and_canonical_name_both_listed(client: OpenAI) -> None:
    ids = {m.id for m in client.models.list()}
    assert {"smollm2-135m-instruct", MODEL} <= ids


# --- malformed and invalid requests ---------------------------------------------------------------------


def test_malformed_json_is_400_envelope(http: httpx.Client) -> None:
    response = http.post("/v1/chat/completions", content=b'{"model": "gpt-4o-mini", "messages": [',
                         headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
    assert response.status_code == 400
    error = envelope(response)
    assert error["type"] == "invalid_request_error"


def test_missing_messages(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=MODEL, messages=openai.NOT_GIVEN)
    assert info.value.param == "messages"
    assert sdk_error(info.value)["type"] == "invalid_request_error"


def test_missing_prompt(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(model=MODEL, prompt=openai.NOT_GIVEN)
    assert info.value.param == "prompt"


@pytest.mark.parametrize(("field", "value"), [
    ("temperature", "hot"),
    ("temperature", 5),
    ("top_p", 1.5),
    ("max_tokens", -1),
    ("n", 0),
])
@pytest.mark.parametrize("stream", [False, True])
def test_invalid_parameter_names_its_param(client: OpenAI, field: str, value: Any, stream: bool) -> None:
    kwargs: dict[str, Any] = {"model": MODEL, "messages": MESSAGES, "max_tokens": 4, field: value}
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(stream=stream, **kwargs)
    assert info.value.status_code == 400
    assert info.value.param == field
    assert sdk_error(info.value)["type"] == "invalid_request_error"


# --- context length -------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_prompt_plus_max_tokens_over_context(client: OpenAI, stream: bool) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=CTX, stream=stream)
    assert info.value.code == "context_length_exceeded"
    assert str(CTX) in info.value.message


def test_prompt_alone_over_context(client: OpenAI) -> None:
    long_text = "the quick brown fox jumps over the lazy dog " * 60  # about 540 tokens
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": long_text}])
    assert info.value.code == "context_length_exceeded"


def test_completions_over_context(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(model=MODEL, prompt="1, 2, 3,", max_tokens=CTX)
    assert info.value.code == "context_length_exceeded"


def test_max_tokens_that_fits_is_served(client: OpenAI) -> None:
    """The limit is the context, not less: a request filling it to the brim is fine."""
    probe = client.completions.create(model=MODEL, prompt="1, 2, 3,", max_tokens=1)
    assert probe.usage is not None
    room = CTX - probe.usage.prompt_tokens
    response = client.completions.create(model=MODEL, prompt="1, 2, 3,", max_tokens=room, stop=[","])
    assert response.choices[0].finish_reason == "stop"


# --- authentication -------------------------------------------------------------------------------------


def test_wrong_key_is_401(keyed_server: ServerProcess) -> None:
    with OpenAI(base_url=keyed_server.base_url, api_key="sk-wrong", max_retries=0) as wrong:
        with pytest.raises(openai.AuthenticationError) as info:
            wrong.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=4)
        assert info.value.status_code == 401
        sdk_error(info.value)
        with pytest.raises(openai.AuthenticationError):
            wrong.models.list()
        with pytest.raises(openai.AuthenticationError):
            wrong.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=4, stream=True)


def test_missing_key_is_401_but_health_is_open(http: httpx.Client) -> None:
    response = http.post("/v1/chat/completions", json={"model": MODEL, "messages": MESSAGES, "max_tokens": 4})
    assert response.status_code == 401
    envelope(response)
    assert http.get("/v1/models").status_code == 401
    health = http.get("/health")
    assert health.status_code == 200
    assert http.get("/metrics").status_code == 200


# --- still alive ----------------------------------------------------------------------------------------


def test_server_still_serves_after_all_errors(client: OpenAI, keyed_server: ServerProcess) -> None:
    assert keyed_server.process.poll() is None
    response = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=8, temperature=0)
    assert response.choices[0].message.content
    stream = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=8, temperature=0,
                                            stream=True)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream)
    assert text == response.choices[0].message.content
    assert "Traceback" not in keyed_server.log()
