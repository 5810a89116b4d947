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
    """Exports each loaded model's engine snapshot under vLLM's names at scrape time, labelled by model."""

    def __init__(self, stats: Callable[[], list[tuple[str, EngineStats]]]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        """The vLLM-named gauges and counters of every loaded model (nothing while none is)."""
        engines = self._stats()
        if not engines:
            return
        gauges: list[tuple[str, str, Callable[[EngineStats], float]]] = [
            ("vllm:num_requests_running", "Number of requests in model execution batches.", lambda s: s.running),
            ("vllm:num_requests_waiting", "Number of requests waiting to be processed.", lambda s: s.waiting),
            ("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", _usage),
            ("vllm:gpu_cache_usage_perc", "KV-cache usage (vLLM's older name). 1 means 100 percent usage.", _usage),
            ("vllm:gpu_prefix_cache_hit_rate", "Prefix cache hit rate: hits over queries since start "
             "(vLLM's older metric).", _hit_rate),
        ]
        for name, documentation, value in gauges:
            gauge = GaugeMetricFamily(name, documentation, labels=LABELS)
            for model, stats in engines:
                gauge.add_metric([model, "0"], value(stats))
            yield gauge
        for prefix in ("vllm:", "vllm:gpu_"):
            queries = CounterMetricFamily(f"{prefix}prefix_cache_queries",
                                          "Prefix cache queries, in terms of number of queried tokens.", labels=LABELS)
            hits = CounterMetricFamily(f"{prefix}prefix_cache_hits",
                                       "Prefix cache hits, in terms of number of cached tokens.", labels=LABELS)
            for model, stats in engines:
                queries.add_metric([model, "0"], stats.prompt_tokens_total)
                hits.add_metric([model, "0"], stats.cached_prompt_tokens_total)
            yield queries
            yield hits


def _usage(stats: EngineStats) -> float:
    return stats.kv_used_tokens / max(1, stats.kv_capacity_tokens)


def _hit_rate(stats: EngineStats) -> float:
    queries = stats.prompt_tokens_total
    return stats.cached_prompt_tokens_total / queries if queries else 0.0
