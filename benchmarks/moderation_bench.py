"""Moderated streaming: TTFT, ITL p50/p99 and tokens/s at 1 and 16 streams, moderation off/blocking/async.

Run it alone on the machine (nothing else busy), from the repository root:

    .venv/bin/python benchmarks/moderation_bench.py                  # ~10 min, SmolLM2
    .venv/bin/python benchmarks/moderation_bench.py --quick          # a 1-minute smoke run (figures not for the record)

One server per configuration, all with 16 lanes, the same per-sequence context and threads: moderation
off; the rules policy (``benchmarks/moderation_rules.toml``) blocking and async; the shipped classifier
(alt-profanity-check) blocking and async. Each of N clients streams 2 chat completions of 128 tokens
in turn (a prose prompt, temperature 0, end-of-generation biased away so every request produces 128
tokens; nothing in the answer is flagged, so the cost of checking and holding back is what is
measured). The server's own hold-back histograms (characters and ms) are read from ``/metrics``.
It writes ``docs/moderation-benchmark.json`` and prints a markdown table for ``docs/performance.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import re
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))

from engine_bench import eog_bias
from servers import Setup, running

from streamserve.bench import BenchClient, Prompt, RequestOptions, run_level
from streamserve.models import resolve_model

RULES = Path(__file__).parent / "moderation_rules.toml"
PROMPT = [{"role": "user", "content": "Write a long, calm story about a lighthouse keeper and the sea."}]
CONFIGS: dict[str, list[str]] = {
    "off": [],
    "rules blocking": ["--moderation", "blocking", "--moderation-rules", str(RULES)],
    "rules async": ["--moderation", "async", "--moderation-rules", str(RULES)],
    "classifier blocking": ["--moderation", "blocking", "--moderation-classifier", "profanity"],
    "classifier async": ["--moderation", "async", "--moderation-classifier", "profanity"],
}


async def measure(base_url: str, levels: list[int], tokens: int, bias: dict[str, float]) -> dict[str, Any]:
    """Each level: N clients each stream 2 chat completions in turn; one discarded warm-up request first."""
    async with BenchClient(base_url) as probe:
        model = (await probe.list_models())[0]
    prompt = Prompt("story", PROMPT, {"logit_bias": bias})
    options = RequestOptions(endpoint="chat", max_tokens=tokens, temperature=0.0, timeout=600.0)
    out: dict[str, Any] = {}
    async with BenchClient(base_url, model=model, options=options) as client:
        await client.send(prompt, stream=True)
        for level in levels:
            result = await run_level(client, [prompt], concurrency=level, requests=2 * level, duration=1800.0)
            summary = result.summary.to_dict()
            summary["short_requests"] = sum(1 for r in result.records if r.ok and r.output_tokens != tokens)
            summary["finish_reasons"] = sorted({str(r.finish_reason) for r in result.records})
            out[str(level)] = summary
    out["holdback"] = holdback(base_url)
    return out


def holdback(base_url: str) -> dict[str, float | None]:
    """Mean hold-back per released delta (characters, ms) and the largest bucket used, from ``/metrics``."""
    text = httpx.get(base_url.removesuffix("/v1") + "/metrics", timeout=10).text

    def value(name: str) -> float | None:
        found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
        return float(found.group(1)) if found else None

    count = value("streamserve:moderation_holdback_characters_count") or 0.0
    chars = value("streamserve:moderation_holdback_characters_sum")
    seconds = value("streamserve:moderation_holdback_seconds_sum")
    buckets = re.findall(r'^streamserve:moderation_holdback_characters_bucket\{le="([^"]+)"\} (\S+)$', text,
                         re.MULTILINE)
    top = next((float(le) for le, n in buckets if le != "+Inf" and float(n) >= count), None) if count else None
    return {
        "deltas": count,
        "mean_chars": chars / count if count and chars is not None else None,
        "mean_ms": 1000 * seconds / count if count and seconds is not None else None,
        "max_chars_bucket": top,
    }


def table(results: dict[str, Any], levels: list[int]) -> str:
    """Markdown: one row per configuration and level, with ratios to moderation off."""
    lines = ["| configuration | streams | TTFT p50 | ITL p50 | ITL p99 | tokens/s | vs off: TTFT, ITL p50, tok/s "
             "| hold-back mean (chars, ms) |", "|---|---|---|---|---|---|---|---|"]
    for name, result in results.items():
        hold = result["holdback"]
        held = (f"{hold['mean_chars']:.1f}, {hold['mean_ms']:.1f} ms" if hold.get("mean_chars") is not None
                else "n/a")
        for level in levels:
            s, base = result[str(level)], results["off"][str(level)]
            ratios = (f"{s['ttft_p50'] / base['ttft_p50']:.2f}x, {s['itl_p50'] / base['itl_p50']:.2f}x, "
                      f"{s['output_tokens_per_s'] / base['output_tokens_per_s']:.2f}x")
            lines.append(f"| {name} | {level} | {1000 * s['ttft_p50']:.0f} ms | {1000 * s['itl_p50']:.1f} ms | "
                         f"{1000 * s['itl_p99']:.1f} ms | {s['output_tokens_per_s']:.0f} | {ratios} | {held} |")
    return "\n".join(lines)


def main() -> int:
    """Run every configuration in turn; write the JSON; print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--levels", default="1,16")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--max-model-len", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated subset of: " + ", ".join(CONFIGS))
    parser.add_argument("--quick", action="store_true", help="levels 1,2 and 16 tokens: checks the script works")
    parser.add_argument("--out", default="docs/moderation-benchmark.json")
    args = parser.parse_args()
    if args.quick:
        args.levels, args.tokens = "1,2", 16
    levels = [int(x) for x in args.levels.split(",")]
    names = [n.strip() for n in args.configs.split(",")]
    if "off" not in names:
        names.insert(0, "off")
    _, path = resolve_model(args.model)
    setup = Setup(path, max_num_seqs=16, max_model_len=args.max_model_len, threads=args.threads)
    bias = eog_bias(path)
    results: dict[str, Any] = {}
    for name in names:
        print(f"[{name}]", flush=True)
        with running("streamserve", setup, None, Path("/tmp/streamserve-moderation-bench"), CONFIGS[name],
                     label=name.replace(" ", "-")) as base_url:
            results[name] = asyncio.run(measure(base_url, levels, args.tokens, bias))
    record = {"date": time.strftime("%Y-%m-%d"), "machine": platform.processor() or platform.machine(),
              "model": args.model, "tokens": args.tokens, "levels": levels, "results": results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    print(table(results, levels))
    return 0


if __name__ == "__main__":
    sys.exit(main())
