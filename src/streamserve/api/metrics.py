"""Prometheus metrics: request latencies observed per response, engine gauges read at scrape time."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from streamserve.engine import EngineStats
from streamserve.generation.events import Usage

logger = logging.getLogger("streamserve.requests")

_LATENCY_BUCKETS = (0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 20.0, 60.0)
_CHECK_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_HOLDBACK_CHAR_BUCKETS = (0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
_E2E_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 60.0, 120.0, 300.0)


class _EngineCollector(Collector):
    """Reads the engine's gauges and counters when Prometheus scrapes."""

    def __init__(self, stats: Callable[[], EngineStats | None]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        stats = self._stats()
        if stats is None:
            return
        yield GaugeMetricFamily("streamserve:num_requests_running", "Sequences in a lane, generating.",
                                value=stats.running)
        yield GaugeMetricFamily("streamserve:num_requests_waiting", "Sequences waiting for a lane.",
                                value=stats.waiting)
        yield GaugeMetricFamily("streamserve:kv_cache_usage_perc", "Fraction of KV cache cells holding tokens.",
                                value=stats.kv_used_tokens / max(1, stats.kv_capacity_tokens))
        yield GaugeMetricFamily("streamserve:lanes_free", "KV lanes holding no sequence (all of them when idle).",
                                value=stats.lanes_free)
        yield GaugeMetricFamily("streamserve:lanes", "KV lanes (--max-num-seqs).", value=stats.lanes_total)
        aborted = CounterMetricFamily("streamserve:aborted_sequences",
                                      "Sequences stopped early by phase: client gone or behind, or a stop string.",
                                      labels=["phase"])
        for phase, count in stats.aborted_total:
            aborted.add_metric([phase], count)
        yield aborted
        yield CounterMetricFamily("streamserve:prompt_tokens", "Prompt tokens admitted.",
                                  value=stats.prompt_tokens_total)
        yield CounterMetricFamily("streamserve:prompt_tokens_cached", "Prompt tokens served from the prompt cache.",
                                  value=stats.cached_prompt_tokens_total)
        yield CounterMetricFamily("streamserve:generation_tokens", "Tokens generated.",
                                  value=stats.generation_tokens_total)
        drafted, accepted = stats.spec_draft_tokens_total, stats.spec_accepted_tokens_total
        yield CounterMetricFamily("streamserve:spec_draft_tokens", "Speculative draft tokens verified.", value=drafted)
        yield CounterMetricFamily("streamserve:spec_accepted_tokens", "Draft tokens the model agreed with.",
                                  value=accepted)
        yield CounterMetricFamily("streamserve:spec_rejected_tokens", "Draft tokens the model disagreed with.",
                                  value=drafted - accepted)


class Metrics:
    """One registry per app: request histograms and counters, plus the engine collector."""

    def __init__(self, stats: Callable[[], EngineStats | None]) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_EngineCollector(stats))
        self.ttft = Histogram("streamserve:time_to_first_token_seconds", "Time to the first text delta.",
                              buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.itl = Histogram("streamserve:inter_token_latency_seconds", "Time between text deltas of a response.",
                             buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.e2e = Histogram("streamserve:e2e_request_latency_seconds", "Time from request to its last event.",
                             buckets=_E2E_BUCKETS, registry=self.registry)
        self.queue_time = Histogram("streamserve:request_queue_time_seconds", "Time waiting for a lane.",
                                    buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.requests = Counter("streamserve:request_success", "Responses by how they ended.",
                                ["finished_reason"], registry=self.registry)
        self.moderation_checks = Counter("streamserve:moderation_checks", "Texts checked by a moderation policy.",
                                         ["policy"], registry=self.registry)
        self.moderation_check_seconds = Histogram(
            "streamserve:moderation_check_seconds", "Time of one batched moderation call.", ["policy"],
            buckets=_CHECK_BUCKETS, registry=self.registry)
        self.moderation_flags = Counter("streamserve:moderation_flags", "Flags raised, by category.",
                                        ["category"], registry=self.registry)
        self.holdback_chars = Histogram(
            "streamserve:moderation_holdback_characters", "Characters generated after a delta, before its release.",
            buckets=_HOLDBACK_CHAR_BUCKETS, registry=self.registry)
        self.holdback_seconds = Histogram(
            "streamserve:moderation_holdback_seconds", "Time a delta was held back for moderation.",
            buckets=_CHECK_BUCKETS, registry=self.registry)

    def on_check(self, policy: str, texts: int, seconds: float) -> None:
        """A batched moderation call (from the checker's thread)."""
        self.moderation_checks.labels(policy=policy).inc(texts)
        self.moderation_check_seconds.labels(policy=policy).observe(seconds)

    def on_flag(self, categories: frozenset[str]) -> None:
        """A flag, counted once per category."""
        for category in categories:
            self.moderation_flags.labels(category=category).inc()

    def on_holdback(self, chars: int, seconds: float) -> None:
        """A held delta was released."""
        self.holdback_chars.observe(chars)
        self.holdback_seconds.observe(seconds)

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)


class RequestRecorder:
    """Observes one response: TTFT, inter-delta gaps, end-to-end time, and one log line at the end."""

    def __init__(self, metrics: Metrics, request_id: str, queue_time: Callable[[], float | None]) -> None:
        self.metrics = metrics
        self.request_id = request_id
        self.start = time.monotonic()
        self._queue_time = queue_time
        self._last: float | None = None
        self._ttft: float | None = None

    def on_text(self) -> None:
        """Record TTFT for the first delta, the gap since the previous one otherwise."""
        now = time.monotonic()
        if self._last is None:
            self._ttft = now - self.start
            self.metrics.ttft.observe(self._ttft)
        else:
            self.metrics.itl.observe(now - self._last)
        self._last = now

    def on_end(self, outcome: str, usage: Usage | None) -> None:
        """Record the end-to-end latency and outcome; log the request's one line."""
        e2e = time.monotonic() - self.start
        self.metrics.e2e.observe(e2e)
        queue_time = self._queue_time()
        if queue_time is not None:
            self.metrics.queue_time.observe(queue_time)
        for reason in outcome.split(","):
            self.metrics.requests.labels(finished_reason=reason or "none").inc()
        ttft = f"{self._ttft * 1000:.0f}ms" if self._ttft is not None else "-"
        queued = f"{queue_time * 1000:.0f}ms" if queue_time is not None else "-"
        logger.info(
            "%s prompt=%s output=%s cached=%s queue=%s ttft=%s e2e=%.0fms end=%s", self.request_id,
            usage.prompt_tokens if usage else "-", usage.completion_tokens if usage else "-",
            usage.cached_tokens if usage else "-", queued, ttft, e2e * 1000, outcome,
        )
