"""The measured scenarios, each a pure HTTP client run through ``streamserve.bench`` against a base URL."""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
from typing import Any

from streamserve.bench import BenchClient, Prompt, RequestOptions, RequestRecord, percentile, run_level

COUNT_PROMPT = "1, 2, 3, 4, 5, 6, 7, 8,"
LONG_TEXT = (
    "Streaming servers send each token as soon as it exists, so a reader sees the first words of an "
    "answer long before the last. The server keeps many sequences in one batch and adds new prompts "
    "between steps, which is called continuous batching. "
)


async def _model(base_url: str) -> str:
    async with BenchClient(base_url) as client:
        return (await client.list_models())[0]


async def sweep(base_url: str, levels: list[int], tokens: int, bias: dict[str, float]) -> dict[str, Any]:
    """Each level: N clients each stream 2 completions in turn; one discarded warm-up request first."""
    model = await _model(base_url)
    prompt = Prompt("count", [], {"prompt": COUNT_PROMPT, "logit_bias": bias})
    options = RequestOptions(endpoint="completions", max_tokens=tokens, temperature=0.0, timeout=600.0)
    out: dict[str, Any] = {}
    async with BenchClient(base_url, model=model, options=options) as client:
        await client.send(prompt, stream=True)
        for level in levels:
            result = await run_level(client, [prompt], concurrency=level, requests=2 * level, duration=1800.0)
            summary = result.summary.to_dict()
            summary["short_requests"] = sum(1 for r in result.records if r.ok and r.output_tokens != tokens)
            out[str(level)] = summary
    return out


def _gaps(record: RequestRecord) -> list[float]:
    times = record.chunk_times
    return [b - a for a, b in itertools.pairwise(times)]


async def long_prompt_during_streams(base_url: str, bias: dict[str, float], streams: int = 8,
                                     long_words: int = 1500) -> dict[str, Any]:
    """8 streams run; a ~1,500-token prompt arrives 1 s in. Their inter-token gaps: p50, p99 and the ratio."""
    model = await _model(base_url)
    options = RequestOptions(endpoint="completions", max_tokens=128, temperature=0.0, timeout=600.0)
    count = Prompt("count", [], {"prompt": COUNT_PROMPT, "logit_bias": bias})
    text = " ".join((LONG_TEXT * 60).split()[:long_words])
    long_prompt = Prompt("long", [], {"prompt": text})
    async with BenchClient(base_url, model=model, options=options) as client:
        await client.send(count, stream=True)
        runs = [asyncio.create_task(client.send(count, stream=True)) for _ in range(streams)]
        await asyncio.sleep(1.0)
        long_record = await client.send(long_prompt, stream=True)
        records = await asyncio.gather(*runs)
    gaps = [g for r in records for g in _gaps(r)]
    p50, p99 = percentile(gaps, 50), percentile(gaps, 99)
    return {
        "streams": streams,
        "long_prompt_tokens": long_record.prompt_tokens,
        "long_prompt_ttft": long_record.ttft,
        "itl_p50": p50,
        "itl_p99": p99,
        "itl_max": max(gaps) if gaps else None,
        "ratio_p99_p50": (p99 / p50) if p50 and p99 else None,
        "errors": sum(not r.ok for r in [*records, long_record]),
    }


async def second_turn(base_url: str, rounds: int = 3, history_words: int = 700) -> dict[str, Any]:
    """A chat's second turn over a ~1,000-token history: its TTFT against the first turn's (prompt cache)."""
    model = await _model(base_url)
    options = RequestOptions(endpoint="chat", max_tokens=32, temperature=0.0, timeout=600.0)
    ratios, first, second, history_tokens = [], [], [], []
    async with BenchClient(base_url, model=model, options=options) as client:
        for i in range(rounds):
            history = f"Document {i}: " + " ".join((LONG_TEXT * 40).split()[:history_words])
            turn1 = [{"role": "system", "content": "You are a concise assistant."},
                     {"role": "user", "content": history + "\n\nWhat is this document about?"}]
            r1 = await client.send(Prompt(f"turn1-{i}", turn1), stream=True)
            turn2 = [*turn1, {"role": "assistant", "content": r1.text},
                     {"role": "user", "content": "Say it again in five words."}]
            r2 = await client.send(Prompt(f"turn2-{i}", turn2), stream=True)
            if r1.ok and r2.ok and r1.ttft and r2.ttft:
                first.append(r1.ttft)
                second.append(r2.ttft)
                ratios.append(r2.ttft / r1.ttft)
                history_tokens.append(r2.prompt_tokens)
    return {
        "rounds": rounds,
        "turn2_prompt_tokens": history_tokens,
        "ttft_turn1_median": statistics.median(first) if first else None,
        "ttft_turn2_median": statistics.median(second) if second else None,
        "ratio_median": statistics.median(ratios) if ratios else None,
    }


SHORT_QUESTIONS = ["Say hi.", "Name a colour.", "What is 2 + 2?", "Name a fruit.", "Say thanks.",
                   "Name a planet.", "Name an animal.", "What day comes after Monday?"]
BOOKSHOP = ("You are a patient assistant for a small bookshop. Answer in one short sentence, politely, and "
            "never invent prices or opening hours.")
CUSTOMER_TURNS = ["Do you sell maps of the city?", "And postcards?", "Thank you, goodbye."]


async def _at(t0: float, delay: float, send: Any) -> Any:
    """Await ``send()`` once ``delay`` seconds have passed since ``t0`` (perf_counter time)."""
    await asyncio.sleep(max(0.0, t0 + delay - time.perf_counter()))
    return await send()


async def _conversation(client: BenchClient, c: int, think: float) -> list[RequestRecord]:
    """One customer's three turns over the shared system prompt, each after the previous answer."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": BOOKSHOP}]
    records = []
    for turn, question in enumerate(CUSTOMER_TURNS):
        messages.append({"role": "user", "content": f"Customer {c}: {question}"})
        record = await client.send(Prompt(f"conversation-{c}-{turn}", list(messages)), stream=True)
        records.append(record)
        messages.append({"role": "assistant", "content": record.text})
        await asyncio.sleep(think)
    return records


async def mixed_load(base_url: str, bias: dict[str, float], *, streams: int = 4, long_prompts: int = 2,
                     long_words: int = 2600, shorts: int = 16, conversations: int = 4) -> dict[str, Any]:
    """Mixed load: short chats and multi-turn conversations arrive while long prompts are read.

    ``streams`` clients keep generating (the running streams, whose inter-token gaps are measured);
    ``long_prompts`` prompts of about 3,500 tokens arrive 7 s apart from t = 1 s; ``shorts`` short
    chats arrive one a second from t = 1.5 s (their TTFT); ``conversations`` customers, sharing a
    system prompt, take three turns each with 1 s between them (the cached-token ratio of turns 2
    and 3, and how many of those turns found the whole previous turn cached).
    """
    model = await _model(base_url)
    chat_options = RequestOptions(endpoint="chat", max_tokens=16, temperature=0.0, timeout=900.0)
    long_options = RequestOptions(endpoint="completions", max_tokens=8, temperature=0.0, timeout=900.0)
    stream_options = RequestOptions(endpoint="completions", max_tokens=64, temperature=0.0, timeout=900.0)
    count = Prompt("count", [], {"prompt": COUNT_PROMPT, "logit_bias": bias})
    words = (LONG_TEXT * 120).split()
    done = asyncio.Event()
    stream_records: list[RequestRecord] = []

    async def keep_streaming(client: BenchClient) -> None:
        while not done.is_set():
            stream_records.append(await client.send(count, stream=True))

    async with BenchClient(base_url, model=model, options=chat_options) as chat, \
            BenchClient(base_url, model=model, options=long_options) as longs, \
            BenchClient(base_url, model=model, options=stream_options) as runner:
        await chat.send(Prompt("warm-up", [{"role": "user", "content": "Hello!"}]), stream=True)
        t0 = time.perf_counter()
        background = [asyncio.create_task(keep_streaming(runner)) for _ in range(streams)]
        long_tasks = [
            asyncio.create_task(_at(t0, 1.0 + 7.0 * i, lambda i=i: longs.send(
                Prompt(f"long-{i}", [], {"prompt": f"Report {i}. " + " ".join(words[i * 50 : i * 50 + long_words])}),
                stream=True)))
            for i in range(long_prompts)
        ]
        short_tasks = [
            asyncio.create_task(_at(t0, 1.5 + 1.0 * i, lambda i=i: chat.send(
                Prompt(f"short-{i}", [{"role": "user", "content": SHORT_QUESTIONS[i % len(SHORT_QUESTIONS)]}]),
                stream=True)))
            for i in range(shorts)
        ]
        talk_tasks = [
            asyncio.create_task(_at(t0, 0.5 + 0.7 * c, lambda c=c: _conversation(chat, c, think=1.0)))
            for c in range(conversations)
        ]
        long_records = await asyncio.gather(*long_tasks)
        short_records = await asyncio.gather(*short_tasks)
        talks = await asyncio.gather(*talk_tasks)
        done.set()
        await asyncio.gather(*background)
    window_end = max(r.start + (r.e2e or 0.0) for r in [*long_records, *short_records] if r.ok)
    # The running streams' gaps while the other requests were in flight (send() times are perf_counter).
    gaps = [b - a for r in stream_records if r.ok for a, b in itertools.pairwise(r.chunk_times)
            if t0 <= r.start + b <= window_end]
    ttfts = [r.ttft for r in short_records if r.ok and r.ttft is not None]
    later_turns = [(turn, talk[i - 1]) for talk in talks for i, turn in enumerate(talk) if i > 0]
    cached = sum(t.cached_tokens or 0 for t, _ in later_turns)
    prompt = sum(t.prompt_tokens or 0 for t, _ in later_turns)
    whole = sum(1 for t, prev in later_turns
                if t.cached_tokens is not None and prev.prompt_tokens is not None
                and t.cached_tokens >= prev.prompt_tokens + prev.output_tokens - 1)
    all_records = [*long_records, *short_records, *stream_records, *(r for talk in talks for r in talk)]
    return {
        "streams": streams,
        "long_prompt_tokens": [r.prompt_tokens for r in long_records],
        "long_prompt_ttft": [r.ttft for r in long_records],
        "short_requests": len(short_records),
        "short_ttft_p50": percentile(ttfts, 50),
        "short_ttft_p99": percentile(ttfts, 99),
        "short_ttft_max": max(ttfts) if ttfts else None,
        "stream_itl_p50": percentile(gaps, 50),
        "stream_itl_p99": percentile(gaps, 99),
        "conversation_turns": len(later_turns),
        "cached_token_ratio": cached / prompt if prompt else None,
        "turns_with_whole_history_cached": whole,
        "errors": sum(not r.ok for r in all_records),
    }
