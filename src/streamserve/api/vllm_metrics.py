"""vLLM's metric names for routers: the engine's gauges and prefix-cache counters as vLLM exports them.

Routers and endpoint pickers read these names without configuration: vLLM's production-stack router
hard-codes them, the Gateway API Inference Extension's endpoint picker (and llm-d on it) defaults to
them. Always on, next to the ``streamserve:*`` names: they cost a few lines per scrape, and a router
reading an absent metric silently sees zero load rather than an error.

Same meanings as vLLM's (v1 engine): requests are sequences (each of ``n`` choices is one);
``kv_cache_usage_perc`` is a fraction, 1.0 meaning full; prefix-cache queries and hits count prompt
tokens looked up and found in the cache. ``gpu_*`` are vLLM's older names for the same values (the
CPU here has no GPU; the names are what older routers read), and ``gpu_prefix_cache_hit_rate`` is
hits over queries since start. Labels as vLLM's: ``model_name`` and ``engine``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from streamserve.engine import EngineStats

LABELS = ["model_name", "engine"]


class VLLMCollector(Collector):
    """Exports the engine's snapshot under vLLM's names at scrape time."""

    def __init__(self, stats: Callable[[], EngineStats | None], model_name: str) -> None:
        self._stats = stats
        self._labels = [model_name, "0"]

    def collect(self) -> Iterator[Metric]:
        """The vLLM-named gauges and counters, or nothing before the model is loaded."""
        stats = self._stats()
        if stats is None:
            return
        usage = stats.kv_used_tokens / max(1, stats.kv_capacity_tokens)
        queries, hits = stats.prompt_tokens_total, stats.cached_prompt_tokens_total
        yield self._gauge("vllm:num_requests_running", "Number of requests in model execution batches.",
                          stats.running)
        yield self._gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.",
                          stats.waiting)
        yield self._gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", usage)
        yield self._gauge("vllm:gpu_cache_usage_perc", "KV-cache usage (vLLM's older name). 1 means 100 percent "
                          "usage.", usage)
        for prefix in ("vllm:", "vllm:gpu_"):
            yield self._counter(f"{prefix}prefix_cache_queries",
                                "Prefix cache queries, in terms of number of queried tokens.", queries)
            yield self._counter(f"{prefix}prefix_cache_hits",
                                "Prefix cache hits, in terms of number of cached tokens.", hits)
        yield self._gauge("vllm:gpu_prefix_cache_hit_rate", "Prefix cache hit rate: hits over queries since start "
                          "(vLLM's older metric).", hits / queries if queries else 0.0)

    def _gauge(self, name: str, documentation: str, value: float) -> GaugeMetricFamily:
        family = GaugeMetricFamily(name, documentation, labels=LABELS)
        family.add_metric(self._labels, value)
        return family

    def _counter(self, name: str, documentation: str, value: float) -> CounterMetricFamily:
        family = CounterMetricFamily(name, documentation, labels=LABELS)
        family.add_metric(self._labels, value)
        return family
