"""Several models in one server (issue 25): cold against warm first tokens, two models streaming at once against
one alone, and the memory the server counts against what the process holds.

One server with both shipped models (`--model smollm2-135m-instruct --model gemma-3-270m`), nothing preloaded:

1. cold: a streamed request to each model while it is unloaded; the time to its first content token is
   the load plus the first token. Then the same request warm, ``--rounds`` times (median).
2. together: ``--streams`` streams of ``--tokens`` tokens on each model alone, then the same number on each
   model at once; aggregate tokens per second (generated tokens over wall time). The models take the
   cores step by step, so what one model alone would do with the same work is the harmonic mean of the
   two alone figures (a step of each, in turn); together against that is the cost of sharing, the
   figure the 0.9x target is on. Together against the faster model alone is printed as well: it also
   counts the slower model's steps. Rounds rotate the order of the three loads.
3. memory: the server's ``streamserve:model_memory_bytes`` (what the budget counts) summed over loaded
   models, against the growth of its resident set since before the first load (/proc/PID/status).

    python benchmarks/models_bench.py            # writes docs/models-bench.json and prints a table
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from servers import free_port, spawned

from streamserve.bench.prometheus import parse_metrics
from streamserve.bench.rss import read_rss

MODELS = ("smollm2-135m-instruct", "gemma-3-270m")
PROMPT = [{"role": "user", "content": "Write a short story about a lighthouse keeper."}]


async def first_token(http: httpx.AsyncClient, model: str, tokens: int = 8) -> float:
    """Seconds from sending a streamed chat request to its first content delta."""
    body = {"model": model, "messages": PROMPT, "max_tokens": tokens, "stream": True, "temperature": 0}
    start = time.perf_counter()
    async with http.stream("POST", "/chat/completions", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if line.startswith("data: {") and '"content":"' in line and '"content":""' not in line:
                return time.perf_counter() - start
    raise RuntimeError(f"{model}: no content")


async def stream_tokens(http: httpx.AsyncClient, model: str, tokens: int) -> int:
    """Stream one request of at most ``tokens`` tokens; the completion tokens it reports."""
    body = {"model": model, "messages": PROMPT, "max_tokens": tokens, "stream": True, "temperature": 0,
            "stream_options": {"include_usage": True}}
    used = 0
    async with http.stream("POST", "/chat/completions", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if line.startswith("data: {") and '"usage":{' in line:
                used = json.loads(line[6:])["usage"]["completion_tokens"]
    return used


async def throughput(http: httpx.AsyncClient, models: list[str], streams: int, tokens: int) -> float:
    """Aggregate generated tokens per second of ``streams`` streams on each of ``models`` at once."""
    start = time.perf_counter()
    done = await asyncio.gather(*(stream_tokens(http, m, tokens) for m in models for _ in range(streams)))
    return sum(done) / (time.perf_counter() - start)


def memory(base_url: str) -> float:
    metrics = parse_metrics(httpx.get(base_url.removesuffix("/v1") + "/metrics", timeout=10).text)
    return sum(v for k, v in metrics.items() if k.startswith("streamserve:model_memory_bytes{"))


async def measure(base_url: str, pid: int, rounds: int, streams: int, tokens: int) -> dict[str, Any]:
    result: dict[str, Any] = {"models": {}}
    baseline = read_rss(pid) or 0
    async with httpx.AsyncClient(base_url=base_url, timeout=600) as http:
        for model in MODELS:
            cold = await first_token(http, model)
            warm = [await first_token(http, model) for _ in range(rounds)]
            result["models"][model] = {"cold_ttft_s": cold, "warm_ttft_s": statistics.median(warm)}
        counted = memory(base_url)
        grown = (read_rss(pid) or 0) - baseline
        result["memory"] = {"counted_bytes": counted, "rss_growth_bytes": grown, "ratio": counted / max(1, grown)}
        alone: dict[str, list[float]] = {model: [] for model in MODELS}
        together: list[float] = []
        loads = [*([model] for model in MODELS), list(MODELS)]
        for round_ in range(rounds):
            for models in loads[round_ % 3:] + loads[:round_ % 3]:
                rate = await throughput(http, models, streams, tokens)
                (together if len(models) > 1 else alone[models[0]]).append(rate)
        medians = {model: statistics.median(rates) for model, rates in alone.items()}
        shared = len(MODELS) / sum(1 / rate for rate in medians.values())
        both = statistics.median(together)
        result["throughput"] = {"alone_tok_s": medians, "time_shared_tok_s": shared, "together_tok_s": both,
                                "ratio": both / shared, "ratio_to_fastest": both / max(medians.values()),
                                "rounds": {"alone": alone, "together": together}}
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--streams", type=int, default=8, help="streams per model, alone and together")
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--out", default="docs", help="directory for models-bench.json ('' to write nothing)")
    args = parser.parse_args()
    port = free_port()
    cmd = [sys.executable, "-m", "streamserve", "serve", "--port", str(port), "--model", MODELS[0], "--model",
           MODELS[1], "--max-num-seqs", "8", "--max-model-len", "1024", "--data-dir",
           str(Path("benchmarks/out/models-data").resolve())]
    with spawned("models-bench", cmd, port, Path("benchmarks/out/logs")) as server:
        result = asyncio.run(measure(server.base_url, server.process.pid, args.rounds, args.streams, args.tokens))
    result.update(command=" ".join(sys.argv), date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    print("| model | cold first token (load + first token) | warm TTFT (median) |")
    print("|---|---|---|")
    for model, row in result["models"].items():
        print(f"| {model} | {row['cold_ttft_s']:.2f} s | {row['warm_ttft_s'] * 1000:.0f} ms |")
    t, m = result["throughput"], result["memory"]
    alone = ", ".join(f"{model} {rate:.1f}" for model, rate in t["alone_tok_s"].items())
    print(f"\naggregate tok/s, {args.streams} streams per model: alone {alone} "
          f"(time-shared {t['time_shared_tok_s']:.1f}); together {t['together_tok_s']:.1f}: "
          f"{t['ratio']:.2f}x time-shared, {t['ratio_to_fastest']:.2f}x the faster")
    print(f"memory counted {m['counted_bytes'] / 2**20:.0f} MiB, resident growth {m['rss_growth_bytes'] / 2**20:.0f} "
          f"MiB ({m['ratio']:.2f}x)")
    if args.out:
        Path(args.out, "models-bench.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
