"""bench/metrics.py: percentiles, ITL per chunk, TPOT per token, level and compare summaries."""

from __future__ import annotations

import pytest

from streamserve.bench.metrics import (
    inter_token_latencies,
    median,
    percentile,
    summarize,
    summarize_compare,
    time_per_output_token,
    token_source,
)
from streamserve.bench.record import RequestRecord


def rec(chunks: list[float], e2e: float, tokens: int, *, ok: bool = True, source: str = "usage") -> RequestRecord:
    """A streamed record with the given chunk times."""
    return RequestRecord(
        stream=True,
        ok=ok,
        ttft=chunks[0] if chunks else None,
        last_token=chunks[-1] if chunks else None,
        e2e=e2e,
        chunk_times=chunks,
        content_chunks=len(chunks),
        output_tokens=tokens,
        token_source=source,  # type: ignore[arg-type]
        text="x" * len(chunks),
    )


def test_percentile_matches_numpy_linear() -> None:
    values = [5.0, 1.0, 4.0, 2.0, 3.0]
    assert percentile(values, 0) == 1.0
    assert percentile(values, 50) == 3.0
    assert percentile(values, 100) == 5.0
    assert percentile(values, 90) == pytest.approx(4.6)
    assert percentile([1.0, 2.0], 99) == pytest.approx(1.99)
    assert percentile([], 50) is None
    assert percentile([7.0], 99) == 7.0
    with pytest.raises(ValueError):
        percentile(values, 101)
    assert median([3.0, 1.0, 2.0, 10.0]) == 2.5 and median([]) is None


def test_itl_is_per_chunk_and_tpot_per_token() -> None:
    record = rec([0.1, 0.2, 0.4], e2e=0.5, tokens=5)
    assert inter_token_latencies(record) == pytest.approx([0.1, 0.2])
    assert time_per_output_token(record) == pytest.approx((0.5 - 0.1) / 4)
    assert time_per_output_token(rec([0.1], e2e=0.2, tokens=1)) is None
    assert time_per_output_token(RequestRecord(stream=False, ok=True, e2e=1.0, output_tokens=9)) is None


def test_summarize_level_counts_only_successes() -> None:
    records = [
        rec([0.1, 0.2], e2e=0.3, tokens=2),
        rec([0.3, 0.5, 0.6], e2e=0.7, tokens=3),
        rec([0.05], e2e=9.0, tokens=1, ok=False),
    ]
    summary = summarize(records, concurrency=2, duration=2.0, planned=4)
    assert (summary.requests, summary.completed, summary.errors, summary.not_sent) == (3, 2, 1, 1)
    assert summary.ttft_p50 == pytest.approx(0.2)
    assert summary.itl_p50 == pytest.approx(0.1)  # gaps 0.1, 0.2, 0.1
    assert summary.tpot_p50 == pytest.approx(((0.3 - 0.1) / 1 + (0.7 - 0.3) / 2) / 2)
    assert summary.e2e_p50 == pytest.approx(0.5)
    assert summary.output_tokens == 5
    assert summary.output_tokens_per_s == pytest.approx(2.5)
    assert summary.requests_per_s == pytest.approx(1.0)
    assert summary.token_source == "usage"


def test_summarize_empty_level() -> None:
    summary = summarize([rec([], e2e=1.0, tokens=0, ok=False)], concurrency=1, duration=1.0, planned=1)
    assert summary.completed == 0 and summary.errors == 1 and summary.ttft_p99 is None
    assert summary.output_tokens_per_s == 0.0 and summary.token_source == "none"


def test_token_source() -> None:
    assert token_source([rec([0.1], 1, 1), rec([0.1], 1, 1, source="chunks")]) == "mixed"
    assert token_source([rec([0.1], 1, 1, source="chunks")]) == "chunks"


def test_summarize_compare() -> None:
    plain = RequestRecord(stream=False, ok=True, e2e=2.0, output_tokens=3, text="xxx")
    pairs = [
        (plain, rec([0.1, 0.2, 0.3], e2e=2.1, tokens=3)),
        (plain, rec([0.3, 0.4, 0.5], e2e=2.3, tokens=3)),
        (RequestRecord(stream=False, ok=False, error="HTTP 500"), rec([0.2, 0.3], e2e=2.0, tokens=2)),
    ]
    summary = summarize_compare(pairs)
    assert summary.runs == 3 and summary.errors == 1
    assert summary.non_stream_e2e == 2.0
    assert summary.stream_ttft == pytest.approx(0.2)
    assert summary.stream_last_token == pytest.approx(0.3)
    assert summary.stream_e2e == pytest.approx(2.1)
    assert summary.texts_equal == 2 and summary.pairs == 2
    assert summary.output_tokens == 3 and summary.token_source == "usage"
