"""``bench compare``: the same prompt without and with streaming, repeated, chunk by chunk.

This is the notebook's experiment (time a request without streaming, then with it) done with
repetitions and a warm-up: each run sends the prompt non-streamed, then streamed, one after the
other, so both see the same idle server.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from .client import BenchClient
from .metrics import CompareSummary, summarize_compare
from .prompts import Prompt
from .record import RequestRecord


@dataclass
class CompareResult:
    """The records of every run, as (non-streamed, streamed) pairs, and what was sent."""

    base_url: str
    model: str
    endpoint: str
    prompt: Prompt
    max_tokens: int | None
    pairs: list[tuple[RequestRecord, RequestRecord]] = field(default_factory=list)
    warmup_errors: int = 0
    runs_planned: int = 0

    @property
    def summary(self) -> CompareSummary:
        """Medians over the runs."""
        return summarize_compare(self.pairs)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with every request's raw timings."""
        return {
            "command": "compare",
            "base_url": self.base_url,
            "model": self.model,
            "endpoint": self.endpoint,
            "prompt": {"name": self.prompt.name, "messages": self.prompt.messages},
            "max_tokens": self.max_tokens,
            "runs_planned": self.runs_planned,
            "warmup_errors": self.warmup_errors,
            "summary": self.summary.to_dict(),
            "runs": [{"non_stream": p.to_dict(), "stream": s.to_dict()} for p, s in self.pairs],
        }


async def run_compare(
    client: BenchClient, prompt: Prompt, *, runs: int, warmup: int = 1, duration: float = 600.0
) -> CompareResult:
    """Send ``prompt`` non-streamed then streamed, ``warmup`` discarded times and ``runs`` kept times.

    No new run starts once ``duration`` seconds have passed; each request has the client's timeout.
    """
    if runs < 1:
        raise ValueError("runs must be at least 1")
    result = CompareResult(
        base_url=client.base_url,
        model=client.model,
        endpoint=client.options.endpoint,
        prompt=prompt,
        max_tokens=client.options.max_tokens,
        runs_planned=runs,
    )
    epoch = time.perf_counter()
    deadline = epoch + duration
    for index in range(warmup + runs):
        if time.perf_counter() >= deadline:
            break
        plain = await client.send(prompt, stream=False, epoch=epoch)
        streamed = await client.send(prompt, stream=True, epoch=epoch)
        if index < warmup:
            result.warmup_errors += (not plain.ok) + (not streamed.ok)
        else:
            result.pairs.append((plain, streamed))
    return result
