"""Client disconnects free their sequence; a full server says 429 with Retry-After.

The server has one lane and no queue (``--max-num-seqs 1 --max-queue 0``): a leaked sequence would turn
every later request into a 429 (or a long wait), so "the next request succeeds promptly" really
proves the abort. The long request is legacy completions on "1, 2, 3, 4, 5," (the model keeps
counting, so it would run the full max_tokens: 2000 tokens are over 15 s at this machine's best
single-stream speed, about 110 tokens/s for the bare decode loop).
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import httpx
import openai
import pytest
from openai import OpenAI

from tests.serverproc import ServerProcess, running_server

pytestmark = pytest.mark.e2e

T = TypeVar("T")

MODEL = "smollm2-135m-instruct"
COUNTING = "1, 2, 3, 4, 5,"
LONG = 2000
PROMPT_DEADLINE_S = 5.0  # far below the >15 s the abandoned request would still need


@pytest.fixture(scope="module")
def one_lane() -> Iterator[ServerProcess]:
    with running_server("--max-num-seqs", "1", "--max-queue", "0") as process:
        yield process


@pytest.fixture(scope="module")
def client(one_lane: ServerProcess) -> Iterator[OpenAI]:
    with OpenAI(base_url=one_lane.base_url, api_key="sk-test", max_retries=0, timeout=60) as openai_client:
        yield openai_client


def until_admitted(call: Callable[[], T], deadline_s: float) -> tuple[T, float, int]:
    """Call until it is not refused with 429 (the abort lands at the engine's next step); time it."""
    start = time.monotonic()
    refused = 0
    while True:
        try:
            return call(), time.monotonic() - start, refused
        except openai.RateLimitError:
            refused += 1
            if time.monotonic() - start > deadline_s:
                raise
            time.sleep(0.05)


def short_request(client: OpenAI) -> Callable[[], Any]:
    return lambda: client.completions.create(model=MODEL, prompt=COUNTING, max_tokens=4, temperature=0)


def request_log_line(server: ServerProcess, request_id: str, deadline_s: float = 5.0) -> str:
    deadline = time.monotonic() + deadline_s
    while True:
        lines = [line for line in server.log().splitlines() if request_id in line and "end=" in line]
        if lines or time.monotonic() > deadline:
            assert lines, f"no request log line for {request_id}:\n{server.log()[-3000:]}"
            return lines[-1]
        time.sleep(0.1)


def open_and_abandon(client: OpenAI, request_id: str) -> None:
    """A long counting stream: read 2 chunks, then close it as a user hitting Ctrl-C would."""
    stream = client.completions.create(model=MODEL, prompt=COUNTING, max_tokens=LONG, temperature=0, stream=True,
                                       extra_headers={"x-request-id": request_id})
    assert stream.response.headers["x-request-id"] == request_id
    chunks_iter = iter(stream)
    chunks = [next(chunks_iter), next(chunks_iter)]
    assert all(chunk.choices for chunk in chunks)
    stream.close()


def test_closing_a_sdk_stream_frees_the_lane(client: OpenAI, one_lane: ServerProcess) -> None:
    request_id = f"e2e-disconnect-{uuid.uuid4().hex[:12]}"
    open_and_abandon(client, request_id)

    response, elapsed, _ = until_admitted(short_request(client), PROMPT_DEADLINE_S)
    assert response.choices[0].finish_reason == "length"
    assert elapsed < PROMPT_DEADLINE_S

    line = request_log_line(one_lane, request_id)
    assert line.rstrip().endswith("end=disconnect"), line


def test_disconnect_log_line_counts_tokens(client: OpenAI, one_lane: ServerProcess) -> None:
    """build-notes: one log line per request with id, prompt and output tokens, TTFT, and how it ended.

    A disconnected request used real prompt and output tokens; its line must say how many (and the
    output count shows the sequence stopped soon after the client left).
    """
    request_id = f"e2e-disconnect-{uuid.uuid4().hex[:12]}"
    open_and_abandon(client, request_id)
    until_admitted(short_request(client), PROMPT_DEADLINE_S)
    line = request_log_line(one_lane, request_id)
    assert line.rstrip().endswith("end=disconnect"), line
    prompt = re.search(r"prompt=(\d+)", line)
    output = re.search(r"output=(\d+)", line)
    assert prompt and output, f"no token counts in the disconnect log line: {line}"
    assert int(prompt.group(1)) > 0
    assert 2 <= int(output.group(1)) < LONG // 4, f"the sequence kept generating after the disconnect: {line}"


def test_closing_a_raw_chat_stream_frees_the_lane(client: OpenAI, one_lane: ServerProcess) -> None:
    request_id = f"e2e-disconnect-{uuid.uuid4().hex[:12]}"
    body = {"model": MODEL, "stream": True, "temperature": 0, "max_tokens": LONG,
            "messages": [{"role": "user", "content": "Count from 1 to 1000, separated by commas."}]}
    with httpx.Client(base_url=one_lane.base_url, timeout=60) as http, \
            http.stream("POST", "/chat/completions", json=body, headers={"x-request-id": request_id}) as response:
        assert response.status_code == 200
        events = 0
        for line in response.iter_lines():
            if line.startswith("data: "):
                events += 1
                if events == 3:  # the role chunk and two content chunks
                    break
    # Leaving both blocks closed the response and the connection.
    response_, elapsed, _ = until_admitted(short_request(client), PROMPT_DEADLINE_S)
    assert response_.choices[0].text
    assert elapsed < PROMPT_DEADLINE_S
    assert request_log_line(one_lane, request_id).rstrip().endswith("end=disconnect")


def test_full_server_answers_429_with_retry_after(client: OpenAI) -> None:
    stream = client.completions.create(model=MODEL, prompt=COUNTING, max_tokens=LONG, temperature=0, stream=True)
    try:
        first = next(iter(stream))  # the one lane is now busy
        assert first.choices
        with pytest.raises(openai.RateLimitError) as info:
            short_request(client)()
        assert info.value.status_code == 429
        retry_after = info.value.response.headers.get("retry-after")
        assert retry_after is not None and retry_after.isdigit() and int(retry_after) >= 1
        error = info.value.response.json()["error"]
        assert error.keys() == {"message", "type", "param", "code"}
        # A streaming request is refused before any byte of SSE: a 429, not a 200 with an error event.
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}],
                                           max_tokens=4, stream=True)
    finally:
        stream.close()
    response, elapsed, _ = until_admitted(short_request(client), PROMPT_DEADLINE_S)
    assert response.choices[0].text
    assert elapsed < PROMPT_DEADLINE_S
    # And it stays free: several requests in a row, none refused.
    for _ in range(3):
        assert short_request(client)().choices[0].finish_reason == "length"
