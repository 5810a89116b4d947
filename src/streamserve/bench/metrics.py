"""Latency and throughput metrics, defined as vLLM's ``benchmark_serving`` defines them.

- TTFT: time from sending the request to the first chunk that carries content.
- ITL (inter-token latency): the gap between two consecutive content chunks, pooled over all
  requests. It is per *chunk*: a chunk holding two tokens is one gap (vLLM's definition).
- TPOT (time per output token): ``(e2e - ttft) / (output_tokens - 1)`` per request, for requests
  with more than one output token. genai-perf calls this per-request figure "inter-token latency".
- E2E: time from sending the request to the complete answer.
- Output tokens/s: all output tokens of the successful requests over the wall time of the level.
- Requests/s: successful requests over the wall time of the level.

Only successful requests enter the latency and throughput figures; failed ones are counted apart.
See ``docs/benchmarking.md``.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from .record import RequestRecord


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) with linear interpolation, as ``numpy.percentile``; None if empty."""
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within [0, 100], got {q}")
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float | None:
    """The median, or None for no values."""
    return statistics.median(values) if values else None


def inter_token_latencies(record: RequestRecord) -> list[float]:
    """The gaps between consecutive content chunks of one streamed request (seconds)."""
    times = record.chunk_times
    return [later - earlier for earlier, later in itertools.pairwise(times)]


def time_per_output_token(record: RequestRecord) -> float | None:
    """``(e2e - ttft) / (output_tokens - 1)``, or None without a TTFT or with fewer than 2 tokens."""
    if record.ttft is None or record.e2e is None or record.output_tokens < 2:
        return None
    return (record.e2e - record.ttft) / (record.output_tokens - 1)


def token_source(records: Sequence[RequestRecord]) -> str:
    """Where the token counts came from: ``usage``, ``chunks``, ``none`` or ``mixed``."""
    sources = {r.token_source for r in records}
    if not sources:
        return "none"
    return sources.pop() if len(sources) == 1 else "mixed"


@dataclass(frozen=True)
class LevelSummary:
    """The figures of one concurrency level. Latencies in seconds; None where nothing was measured."""

    concurrency: int
    requests: int
    completed: int
    errors: int
    not_sent: int
    duration: float
    ttft_p50: float | None
    ttft_p90: float | None
    ttft_p99: float | None
    itl_p50: float | None
    itl_p99: float | None
    tpot_p50: float | None
    tpot_p99: float | None
    e2e_p50: float | None
    e2e_p99: float | None
    output_tokens: int
    output_tokens_per_s: float
    requests_per_s: float
    token_source: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def summarize(records: Sequence[RequestRecord], *, concurrency: int, duration: float, planned: int) -> LevelSummary:
    """Summarise the records of one level run for ``duration`` seconds out of ``planned`` requests."""
    ok = [r for r in records if r.ok]
    ttfts = [r.ttft for r in ok if r.ttft is not None]
    itls = [gap for r in ok for gap in inter_token_latencies(r)]
    tpots = [t for r in ok if (t := time_per_output_token(r)) is not None]
    e2es = [r.e2e for r in ok if r.e2e is not None]
    tokens = sum(r.output_tokens for r in ok)
    rate = 1.0 / duration if duration > 0 else 0.0
    return LevelSummary(
        concurrency=concurrency,
        requests=len(records),
        completed=len(ok),
        errors=len(records) - len(ok),
        not_sent=max(0, planned - len(records)),
        duration=duration,
        ttft_p50=percentile(ttfts, 50),
        ttft_p90=percentile(ttfts, 90),
        ttft_p99=percentile(ttfts, 99),
        itl_p50=percentile(itls, 50),
        itl_p99=percentile(itls, 99),
        tpot_p50=percentile(tpots, 50),
        tpot_p99=percentile(tpots, 99),
        e2e_p50=percentile(e2es, 50),
        e2e_p99=percentile(e2es, 99),
        output_tokens=tokens,
        output_tokens_per_s=tokens * rate,
        requests_per_s=len(ok) * rate,
        token_source=token_source(ok),
    )


@dataclass(frozen=True)
class CompareSummary:
    """Medians over the runs of ``bench compare``. Times in seconds, None where nothing was measured."""

    runs: int
    errors: int
    non_stream_e2e: float | None
    stream_ttft: float | None
    stream_last_token: float | None
    stream_e2e: float | None
    itl_p50: float | None
    output_tokens: float | None
    content_chunks: float | None
    token_source: str
    texts_equal: int
    pairs: int

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def summarize_compare(pairs: Sequence[tuple[RequestRecord, RequestRecord]]) -> CompareSummary:
    """Summarise (non-streamed, streamed) record pairs: medians of each time, and text agreement."""
    plain = [p for p, _ in pairs if p.ok]
    streamed = [s for _, s in pairs if s.ok]
    both = [(p, s) for p, s in pairs if p.ok and s.ok]
    return CompareSummary(
        runs=len(pairs),
        errors=sum((not p.ok) + (not s.ok) for p, s in pairs),
        non_stream_e2e=median([r.e2e for r in plain if r.e2e is not None]),
        stream_ttft=median([r.ttft for r in streamed if r.ttft is not None]),
        stream_last_token=median([r.last_token for r in streamed if r.last_token is not None]),
        stream_e2e=median([r.e2e for r in streamed if r.e2e is not None]),
        itl_p50=percentile([g for r in streamed for g in inter_token_latencies(r)], 50),
        output_tokens=median([float(r.output_tokens) for r in streamed]),
        content_chunks=median([float(r.content_chunks) for r in streamed]),
        token_source=token_source(streamed),
        texts_equal=sum(p.text == s.text for p, s in both),
        pairs=len(both),
    )
