"""What the A/B latency benchmarks share: pooled summaries per variant and level, and their table with
each variant's ratios to a reference one (responses_bench, store_bench, messages_bench)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from streamserve.bench import RequestRecord, summarize


def summaries(records: Mapping[tuple[str, int], list[RequestRecord]], durations: Mapping[tuple[str, int], float],
              tokens: int) -> dict[str, dict[str, Any]]:
    """Each (variant, level)'s pooled summary, with how many requests came back short of ``tokens``."""
    out: dict[str, dict[str, Any]] = {}
    for (variant, level), recs in records.items():
        summary = summarize(recs, concurrency=level, duration=durations[variant, level], planned=len(recs)).to_dict()
        summary["short_requests"] = sum(1 for r in recs if r.ok and r.output_tokens != tokens)
        out.setdefault(variant, {})[str(level)] = summary
    return out


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value * 1000:.1f}"


def _ratio(a: float | None, b: float | None) -> str:
    return "–" if not a or not b else f"{a / b:.3f}"


def _tps(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def table(model: str, result: Mapping[str, Any], levels: Sequence[int], variants: Sequence[str], *,
          reference: str, label: str = "variant") -> str:
    """Markdown rows: each variant at each level, with its TTFT and ITL p50 ratios to ``reference``'s."""
    lines = [f"### {model}", "",
             f"| {label} | streams | TTFT p50 (ms) | TTFT p99 (ms) | ITL p50 (ms) | ITL p99 (ms) | tok/s | "
             f"TTFT p50 / {reference} | ITL p50 / {reference} | errors | short |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for level in levels:
        base = result[reference][str(level)]
        for variant in variants:
            s = result[variant][str(level)]
            lines.append(f"| {variant} | {level} | {_ms(s['ttft_p50'])} | {_ms(s['ttft_p99'])} | {_ms(s['itl_p50'])} | "
                         f"{_ms(s['itl_p99'])} | {_tps(s.get('output_tokens_per_s'))} | "
                         f"{_ratio(s['ttft_p50'], base['ttft_p50'])} | {_ratio(s['itl_p50'], base['itl_p50'])} | "
                         f"{s.get('errors', '–')} | {s['short_requests']} |")
    return "\n".join(lines) + "\n"
