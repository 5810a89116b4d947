"""The engine as a client sees it: eight streams served together, the prompt cache across chat turns, /metrics.

One module server with eight lanes, through the official ``openai`` client. The engine uses one
thread: on a busy 2-core machine llama.cpp's spinning worker threads otherwise slow down badly.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from openai import AsyncOpenAI, OpenAI

from tests.serverproc import ServerProcess, running_server

pytestmark = pytest.mark.e2e

MODEL = "smollm2-135m-instruct"
SERVER_ARGS = ("--max-num-seqs", "8", "--max-model-len", "1024", "--threads", "1")
TIMEOUT_S = 120.0
MAX_TOKENS = 32

# Requests this module has had answered by the module server, for the /metrics checks.
SERVED: list[int] = []


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with running_server(*SERVER_ARGS) as process:
        yield process


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Iterator[OpenAI]:
    with OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0, timeout=TIMEOUT_S) as c:
        yield c


@dataclass
class StreamResult:
    text: str = ""
    chunk_times: list[float] = field(default_factory=list)
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int | None = None


async def _stream(client: AsyncOpenAI, messages: list[dict[str, str]], start: float) -> StreamResult:
    result = StreamResult()
    stream = await client.chat.completions.create(
        model=MODEL, messages=messages, max_tokens=MAX_TOKENS, temperature=0.0, stream=True,  # type: ignore[arg-type]
        stream_options={"include_usage": True},
    )
    async for chunk in stream:
        if chunk.choices:
            choice = chunk.choices[0]
            if choice.delta.content:
                result.chunk_times.append(time.monotonic() - start)
                result.text += choice.delta.content
            if choice.finish_reason is not None:
                result.finish_reason = choice.finish_reason
        if chunk.usage is not None:
            result.prompt_tokens = chunk.usage.prompt_tokens
            result.completion_tokens = chunk.usage.completion_tokens
            details = chunk.usage.prompt_tokens_details
            result.cached_tokens = details.cached_tokens if details is not None else None
    return result


def stream_chat(base_url: str, messages: list[dict[str, str]]) -> StreamResult:
    async def main() -> StreamResult:
        async with AsyncOpenAI(base_url=base_url, api_key="sk-test", max_retries=0, timeout=TIMEOUT_S) as c:
            return await _stream(c, messages, time.monotonic())

    return asyncio.run(asyncio.wait_for(main(), TIMEOUT_S))


def _looks_like_text(text: str) -> bool:
    return "\ufffd" not in text and len(re.findall(r"[A-Za-z]{3,}", text)) >= 4


# Continuous batching over HTTP


def test_eight_concurrent_streams_are_served_together(server: ServerProcess) -> None:
    topics = ["the sea", "a cat", "mountains", "the moon", "coffee", "trains", "autumn", "a library"]

    async def main() -> list[StreamResult]:
        async with AsyncOpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0, timeout=TIMEOUT_S) as c:
            start = time.monotonic()
            # A short system prompt keeps the burst's prompts short: while the first streams decode,
            # later prompts are read a few tokens per step (the prefill-stall budget).
            return await asyncio.gather(*(
                _stream(c, [{"role": "system", "content": "You are a poet."},
                            {"role": "user", "content": f"Write a long poem about {topic}."}], start)
                for topic in topics
            ))

    results = asyncio.run(asyncio.wait_for(main(), TIMEOUT_S))
    for topic, result in zip(topics, results, strict=True):
        assert result.finish_reason in ("length", "stop"), (topic, result)
        assert _looks_like_text(result.text), (topic, result.text)
        assert len(result.chunk_times) >= 10, f"{topic}: {len(result.chunk_times)} chunks: not streamed token by token"
        if result.finish_reason == "length":
            assert result.completion_tokens == MAX_TOKENS
        SERVED.append(result.completion_tokens)
    assert len({r.text for r in results}) >= 6, "eight different prompts gave (nearly) the same text"

    firsts = [r.chunk_times[0] for r in results]
    lasts = [r.chunk_times[-1] for r in results]
    # Served together, not in turn: every stream had its first chunk before any stream had its last.
    assert max(firsts) < min(lasts), (firsts, lasts)
    arrivals = sorted((t, i) for i, r in enumerate(results) for t in r.chunk_times)
    switches = sum(a[1] != b[1] for a, b in itertools.pairwise(arrivals))
    assert switches >= 4 * len(topics), f"only {switches} switches between streams: they ran one after another"


# Prompt cache across chat turns


def test_second_chat_turn_reuses_the_first_and_answers_as_without_cache(server: ServerProcess,
                                                                        client: OpenAI) -> None:
    """The second turn's prompt cache hit covers the first turn's whole grid chunks, and the answer
    equals a cache-free run: the same request sent first to a freshly started server, greedy answers
    equal, not merely similar (docs/determinism.md).
    """
    first_turn = [{"role": "system", "content": "You are a concise geography tutor. " * 6},
                  {"role": "user", "content": "What is the capital of France?"}]
    first = client.chat.completions.create(model=MODEL, messages=first_turn, max_tokens=MAX_TOKENS,  # type: ignore[arg-type]
                                           temperature=0.0)
    answer = first.choices[0].message.content
    assert first.usage is not None and answer
    SERVED.append(first.usage.completion_tokens)
    second_turn = [*first_turn, {"role": "assistant", "content": answer},
                   {"role": "user", "content": "And what is the capital of Spain?"}]

    cached = stream_chat(server.base_url, second_turn)
    SERVED.append(cached.completion_tokens)
    assert cached.cached_tokens is not None
    # The first prompt's whole 64-token grid chunks come from the cache; its tail and the answer are
    # read again, in the chunks a fresh read uses.
    assert cached.cached_tokens == first.usage.prompt_tokens // 64 * 64 > 0, (cached.cached_tokens, first.usage)
    assert cached.text.strip() and "\ufffd" not in cached.text

    with running_server(*SERVER_ARGS) as fresh_server:
        fresh = stream_chat(fresh_server.base_url, second_turn)
    assert fresh.cached_tokens == 0
    assert fresh.text == cached.text
    assert fresh.finish_reason == cached.finish_reason


# Metrics


def _metric(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)}(?:\{{[^}}]*\}})? ([0-9.e+-]+)$", text, re.MULTILINE)
    assert match, f"{name} missing from /metrics"
    return float(match.group(1))


def test_metrics_count_the_requests_served(server: ServerProcess, client: OpenAI) -> None:
    def scrape() -> str:
        response = httpx.get(server.url + "/metrics", timeout=30)
        assert response.status_code == 200
        return response.text

    before = scrape()
    for question in ("Name a color.", "Name a planet."):
        response = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": question}],
                                                  max_tokens=8, temperature=0.0)
        assert response.usage is not None and response.choices[0].message.content
        SERVED.append(response.usage.completion_tokens)
    after = scrape()

    ttft = "streamserve:time_to_first_token_seconds_count"
    generated = "streamserve:generation_tokens_total"
    assert _metric(after, ttft) >= _metric(before, ttft) + 2
    assert _metric(after, ttft) >= len(SERVED)
    assert _metric(after, generated) >= _metric(before, generated) + sum(SERVED[-2:])
    assert _metric(after, generated) >= sum(SERVED)
    assert _metric(after, "streamserve:prompt_tokens_total") > _metric(before, "streamserve:prompt_tokens_total")
    assert _metric(after, "streamserve:num_requests_running") == 0  # idle again
    assert _metric(after, "streamserve:num_requests_waiting") == 0
    assert _metric(after, "streamserve:lanes_free") == _metric(after, "streamserve:lanes") == 8
    assert 'streamserve:aborted_sequences_total{phase="waiting"}' in after
