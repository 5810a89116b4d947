"""``bench load``: a concurrency sweep of streamed requests.

At each level, ``concurrency`` workers share a fixed budget of ``requests``; each worker sends its
next request as soon as its previous one ends (a closed loop, as ``vllm bench serve
--max-concurrency`` and genai-perf's concurrency mode do). A level stops starting requests after
``duration`` seconds, and every request has the client's timeout, so a level always ends.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from .client import BenchClient
from .metrics import LevelSummary, summarize
from .prompts import Prompt
from .record import RequestRecord


class ProgressSink(Protocol):
    """Receives progress events of a sweep (the CLI's live progress bar implements it)."""

    def start_level(self, concurrency: int, total: int) -> None:
        """A level begins with ``total`` planned requests."""

    def request_done(self, record: RequestRecord) -> None:
        """One request of the current level has finished, well or not."""

    def end_level(self, summary: LevelSummary) -> None:
        """The current level has finished."""


@dataclass
class LevelResult:
    """One concurrency level: its records (in completion order), wall time and summary."""

    concurrency: int
    planned: int
    duration: float
    records: list[RequestRecord]
    summary: LevelSummary

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with the summary and every request's raw timings."""
        return {
            "concurrency": self.concurrency,
            "summary": self.summary.to_dict(),
            "requests": [r.to_dict() for r in self.records],
        }


@dataclass
class LoadResult:
    """A whole sweep: what was sent and the result of each level."""

    base_url: str
    model: str
    endpoint: str
    max_tokens: int | None
    prompts: list[str]
    levels: list[LevelResult] = field(default_factory=list)
    warmup_errors: int = 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the whole sweep."""
        return {
            "command": "load",
            "base_url": self.base_url,
            "model": self.model,
            "endpoint": self.endpoint,
            "max_tokens": self.max_tokens,
            "prompts": self.prompts,
            "warmup_errors": self.warmup_errors,
            "levels": [level.to_dict() for level in self.levels],
        }


async def run_level(
    client: BenchClient,
    prompts: Sequence[Prompt],
    *,
    concurrency: int,
    requests: int,
    duration: float,
    progress: ProgressSink | None = None,
) -> LevelResult:
    """Run ``requests`` streamed requests with at most ``concurrency`` in flight."""
    if concurrency < 1 or requests < 1:
        raise ValueError("concurrency and requests must be at least 1")
    if not prompts:
        raise ValueError("no prompts")
    records: list[RequestRecord] = []
    numbers = iter(range(requests))
    t0 = time.perf_counter()
    deadline = t0 + duration

    async def worker() -> None:
        for number in numbers:  # the iterator is shared: each number is taken once
            if time.perf_counter() >= deadline:
                return
            record = await client.send(prompts[number % len(prompts)], stream=True, epoch=t0)
            records.append(record)
            if progress is not None:
                progress.request_done(record)

    if progress is not None:
        progress.start_level(concurrency, requests)
    await asyncio.gather(*(worker() for _ in range(min(concurrency, requests))))
    elapsed = time.perf_counter() - t0
    summary = summarize(records, concurrency=concurrency, duration=elapsed, planned=requests)
    if progress is not None:
        progress.end_level(summary)
    return LevelResult(concurrency, requests, elapsed, records, summary)


async def run_sweep(
    client: BenchClient,
    prompts: Sequence[Prompt],
    *,
    levels: Sequence[int],
    requests: int,
    duration: float,
    warmup: int = 1,
    progress: ProgressSink | None = None,
) -> LoadResult:
    """Warm up with ``warmup`` discarded requests, then run each concurrency level in turn."""
    result = LoadResult(
        base_url=client.base_url,
        model=client.model,
        endpoint=client.options.endpoint,
        max_tokens=client.options.max_tokens,
        prompts=[p.name for p in prompts],
    )
    for prompt in itertools.islice(itertools.cycle(prompts), warmup):
        record = await client.send(prompt, stream=True)
        result.warmup_errors += not record.ok
    for concurrency in levels:
        level = await run_level(
            client, prompts, concurrency=concurrency, requests=requests, duration=duration, progress=progress
        )
        result.levels.append(level)
    return result
