"""The measured scenarios, each a pure HTTP client run through ``streamserve.bench`` against a base URL."""

from __future__ import annotations

import asyncio
import itertools
import statistics
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
