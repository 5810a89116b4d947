"""What the A/B latency benchmarks share: pooled summaries per variant and level, and their table with
each variant's ratios to a reference one (responses_bench, store_bench, messages_bench)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from streamserve.bench import RequestRecord, summarize


def arguments(doc: str | None, rounds: int) -> argparse.ArgumentParser:
    """The arguments every A/B benchmark takes (a script adds its own before parsing)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="smollm2-135m-instruct,gemma-3-270m")
    parser.add_argument("--levels", default="1,16")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--max-model-len", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="docs", help="directory for the JSON ('' to write nothing)")
    return parser


def results_of(args: argparse.Namespace, prompt: str) -> dict[str, Any]:
    """The JSON's header (command, date, prompt, tokens, rounds); each model's result goes under ``models``."""
    return {"command": " ".join(sys.argv), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "prompt": prompt, "tokens": args.tokens, "rounds": args.rounds, "models": {}}


def write(args: argparse.Namespace, name: str, results: Mapping[str, Any], tables: Sequence[str]) -> None:
    """Write the JSON as ``name`` into ``--out`` (unless it is empty) and print the tables."""
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(json.dumps(results, indent=2))
    print("\n" + "\n".join(tables))


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
