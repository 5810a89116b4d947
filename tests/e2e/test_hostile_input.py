"""Hostile input against a real server: refused early, in OpenAI's envelope, while other streams keep flowing."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx
import pytest

from tests.e2e.ssewire import MODEL, SSEStream, read_stream
from tests.serverproc import ServerProcess

pytestmark = pytest.mark.e2e

NO_EOS = {"0": -100, "1": -100, "2": -100}  # SmolLM2's end tokens: the stream outlives the hostile request
MAX_GAP_S = 0.5


def envelope(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["x-request-id"]
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


def stream_during(http: httpx.Client, hostile: Any) -> tuple[SSEStream, Any]:
    """Stream 200 tokens; once it flows, run ``hostile()`` on another thread; return both results."""
    result: dict[str, Any] = {}
    body = {"model": MODEL, "prompt": "1, 2, 3,", "max_tokens": 200, "temperature": 0, "logit_bias": NO_EOS}

    def run_hostile() -> None:
        time.sleep(0.5)  # the stream is flowing by now
        result["hostile"] = hostile()

    thread = threading.Thread(target=run_hostile)
    thread.start()
    stream = read_stream(http, "/completions", body)
    thread.join()
    return stream, result["hostile"]


def max_gap(stream: SSEStream) -> float:
    return max(b - a for a, b in zip(stream.times, stream.times[1:], strict=False))


def raw_post(server: ServerProcess, path: str, content: bytes) -> httpx.Response:
    return httpx.post(server.base_url + path, content=content, headers={"content-type": "application/json"},
                      timeout=60)


def test_a_10mb_body_gets_413_and_does_not_pause_other_streams(server: ServerProcess, http: httpx.Client) -> None:
    big = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "x" * 10_000_000}]}).encode()
    stream, response = stream_during(http, lambda: raw_post(server, "/chat/completions", big))
    error = envelope(response, 413)
    assert error["code"] == "request_too_large"
    assert stream.saw_done and len(stream.times) > 100
    assert max_gap(stream) < MAX_GAP_S


def test_a_body_just_under_the_limit_is_refused_before_templating(server: ServerProcess, http: httpx.Client) -> None:
    text = "Tell me everything. " * 200_000  # 4,000,000 characters in a 4 MiB body
    body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": text}]}).encode()

    def timed_post() -> tuple[httpx.Response, float]:
        started = time.monotonic()
        return raw_post(server, "/chat/completions", body), time.monotonic() - started

    stream, (response, seconds) = stream_during(http, timed_post)
    error = envelope(response, 400)
    assert error["code"] == "context_length_exceeded" and error["param"] == "messages"
    assert seconds < 5  # refused from its length alone: tokenizing 4 MB would take far longer
    assert max_gap(stream) < MAX_GAP_S


@pytest.mark.parametrize(
    ("path", "raw", "param"),
    [
        ("/chat/completions", '{"model": "%s", "messages": [{"role": "user", "content": "a\\ud800b"}]}',
         "messages.0.content"),
        ("/chat/completions", '{"model": "\\ud800", "messages": [{"role": "user", "content": "hi"}]}', "model"),
        ("/completions", '{"model": "%s", "prompt": "\\udc00"}', "prompt"),
        ("/completions", '{"model": "%s", "prompt": ["ok", "\\udc00"]}', "prompt.1"),
        ("/chat/completions", '{"model": "%s", "messages": [{"role": "user", "content": "hi"}], "temperature": NaN}',
         "temperature"),
        ("/completions", '{"model": "%s", "prompt": "hi", "top_p": Infinity}', "top_p"),
        ("/chat/completions", '{"model": "%s", "messages": [{"role": "user"}]}', "messages.0.content"),
        ("/chat/completions", '{"model": "%s", "messages": [{"role": "assistant", "content": null}]}',
         "messages.0.content"),
    ],
)
def test_unusable_values_are_400s_naming_the_param(server: ServerProcess, path: str, raw: str, param: str) -> None:
    response = raw_post(server, path, raw.replace("%s", MODEL).encode())
    error = envelope(response, 400)
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"


def test_oversized_arrays_and_nesting_are_400s(server: ServerProcess) -> None:
    base: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
    bias = {str(i): 1 for i in range(301)}
    assert envelope(raw_post(server, "/chat/completions", json.dumps({**base, "logit_bias": bias}).encode()),
                    400)["param"] == "logit_bias"
    stops = ["a", "b", "c", "d", "e"]
    assert envelope(raw_post(server, "/chat/completions", json.dumps({**base, "stop": stops}).encode()),
                    400)["param"] == "stop"
    deep = json.dumps(base)[:-1] + ', "metadata": ' + "[" * 100_000 + "]" * 100_000 + "}"
    assert "levels deep" in envelope(raw_post(server, "/chat/completions", deep.encode()), 400)["message"]
    not_utf8 = json.dumps(base, ensure_ascii=False).replace("hi", "h\u00e9").encode().replace(b"\xc3\xa9", b"\xe9")
    assert "UTF-8" in envelope(raw_post(server, "/chat/completions", not_utf8), 400)["message"]


def test_the_server_is_still_serving(http: httpx.Client) -> None:
    stream = read_stream(http, "/completions", {"model": MODEL, "prompt": "1, 2,", "max_tokens": 4})
    assert stream.status_code == 200 and stream.saw_done
