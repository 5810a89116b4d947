"""Prometheus metrics: request latencies observed per response, engine gauges read at scrape time.

The engine's gauges are exported twice: as ``streamserve:*`` and under vLLM's names (``vllm_metrics.py``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from streamserve.api.vllm_metrics import VLLMCollector
from streamserve.engine import EngineStats
from streamserve.generation.events import Usage

logger = logging.getLogger("streamserve.requests")

_LATENCY_BUCKETS = (0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 20.0, 60.0)
_CHECK_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_HOLDBACK_CHAR_BUCKETS = (0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
_E2E_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 60.0, 120.0, 300.0)


class _EngineCollector(Collector):
    """Reads every loaded model's engine gauges and counters when Prometheus scrapes, labelled ``model_name``
    as vLLM labels its own."""

    def __init__(self, stats: Callable[[], list[tuple[str, EngineStats]]]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        engines = self._stats()
        gauges: list[tuple[str, str, Callable[[EngineStats], float]]] = [
            ("streamserve:num_requests_running", "Sequences in a lane, generating.", lambda s: s.running),
            ("streamserve:num_requests_waiting", "Sequences waiting for a lane.", lambda s: s.waiting),
            ("streamserve:kv_cache_usage_perc", "Fraction of KV cache cells holding tokens.",
             lambda s: s.kv_used_tokens / max(1, s.kv_capacity_tokens)),
            ("streamserve:lanes_free", "KV lanes holding no sequence (all of them when idle).",
             lambda s: s.lanes_free),
            ("streamserve:lanes", "KV lanes (--max-num-seqs).", lambda s: s.lanes_total),
        ]
        for name, help_text, value in gauges:
            gauge = GaugeMetricFamily(name, help_text, labels=["model_name"])
            for model, stats in engines:
                gauge.add_metric([model], value(stats))
            yield gauge
        aborted = CounterMetricFamily("streamserve:aborted_sequences",
                                      "Sequences stopped early by phase: client gone or behind, or a stop string.",
                                      labels=["model_name", "phase"])
        for model, stats in engines:
            for phase, count in stats.aborted_total:
                aborted.add_metric([model, phase], count)
        yield aborted
        counters: list[tuple[str, str, Callable[[EngineStats], float]]] = [
            ("streamserve:prompt_tokens", "Prompt tokens admitted.", lambda s: s.prompt_tokens_total),
            ("streamserve:prompt_tokens_cached", "Prompt tokens served from the prompt cache.",
             lambda s: s.cached_prompt_tokens_total),
            ("streamserve:generation_tokens", "Tokens generated.", lambda s: s.generation_tokens_total),
            ("streamserve:spec_draft_tokens", "Speculative draft tokens verified.",
             lambda s: s.spec_draft_tokens_total),
            ("streamserve:spec_accepted_tokens", "Draft tokens the model agreed with.",
             lambda s: s.spec_accepted_tokens_total),
            ("streamserve:spec_rejected_tokens", "Draft tokens the model disagreed with.",
             lambda s: s.spec_draft_tokens_total - s.spec_accepted_tokens_total),
        ]
        for name, help_text, value in counters:
            counter = CounterMetricFamily(name, help_text, labels=["model_name"])
            for model, stats in engines:
                counter.add_metric([model], value(stats))
            yield counter


@dataclass(frozen=True, slots=True)
class ModelReport:
    """One servable model as ``/metrics`` reports it."""

    name: str
    state: str
    memory_bytes: int
    loads: int


class _ModelsCollector(Collector):
    """Each servable model's state, memory counted against the budget, and loads so far."""

    def __init__(self, models: Callable[[], tuple[int, list[ModelReport]]]) -> None:
        self._models = models

    def collect(self) -> Iterator[Metric]:
        budget, reports = self._models()
        if not reports:
            return
        yield GaugeMetricFamily("streamserve:models_memory_budget_bytes",
                                "Memory all loaded models may take together (--max-memory).", value=budget)
        memory = GaugeMetricFamily("streamserve:model_memory_bytes",
                                   "Memory a loaded or loading model counts against the budget.", labels=["model_name"])
        loaded = GaugeMetricFamily("streamserve:model_loaded", "1 while the model is loaded, else 0.",
                                   labels=["model_name"])
        loads = CounterMetricFamily("streamserve:model_loads", "Times the model was loaded.", labels=["model_name"])
        for report in reports:
            memory.add_metric([report.name], report.memory_bytes)
            loaded.add_metric([report.name], 1.0 if report.state == "loaded" else 0.0)
            loads.add_metric([report.name], report.loads)
        yield from (memory, loaded, loads)


class Metrics:
    """One registry per app: request histograms and counters, the engine collectors (ours and vLLM's names, every
    loaded model labelled ``model_name`` as vLLM labels it) and the models' states and memory."""

    def __init__(self, stats: Callable[[], list[tuple[str, EngineStats]]],
                 models: Callable[[], tuple[int, list[ModelReport]]] = lambda: (0, [])) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_EngineCollector(stats))
        self.registry.register(VLLMCollector(stats))
        self.registry.register(_ModelsCollector(models))
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

    def __init__(self, metrics: Metrics, request_id: str, queue_time: Callable[[], float | None],
                 model: str = "-") -> None:
        self.metrics = metrics
        self.request_id = request_id
        self.model = model
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
            "%s model=%s prompt=%s output=%s cached=%s queue=%s ttft=%s e2e=%.0fms end=%s", self.request_id, self.model,
            usage.prompt_tokens if usage else "-", usage.completion_tokens if usage else "-",
            usage.cached_tokens if usage else "-", queued, ttft, e2e * 1000, outcome,
        )
