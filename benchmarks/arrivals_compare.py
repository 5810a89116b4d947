"""Simultaneous arrivals: the time to first token of 16 requests sent at once to an idle server, this checkout
against an older commit, servers alternating.

``engine_compare.py``'s 16-stream TTFT p50 is a median of a few loads of a bimodal figure: 16 arrivals land in
one engine step or two, so its ratio swings by 30% or more between runs. This measures that figure alone,
many times: for each model and each of ``--rounds`` rounds, a server of each checkout (the order alternating
from round to round) takes ``--bursts`` bursts of 16 streamed completions of 8 tokens sent at once, half a
second apart, each on an idle server. Each burst gives its TTFT p50 (the median over its 16 requests); the
figures per checkout are the median and the mean over all its bursts (with two modes, the mean also moves
with how many bursts fell in each). Run it alone, from the repository root:

    python benchmarks/arrivals_compare.py --baseline HEAD~1
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))

import scenarios
from engine_bench import eog_bias, machine
from engine_compare import takes_vllm_names, worktree
from servers import Setup, command, free_port, spawned

from streamserve.models import resolve_model

ARRIVALS, TOKENS = 16, 8


async def first_token(client: httpx.AsyncClient, base_url: str, body: dict[str, Any]) -> float:
    """Seconds from sending one streamed completion to its first chunk with text."""
    started = time.perf_counter()
    async with client.stream("POST", base_url + "/completions", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if line.startswith("data: {") and json.loads(line[6:])["choices"][0]["text"]:
                return time.perf_counter() - started
    raise RuntimeError("the stream ended without text")


async def bursts(base_url: str, bias: dict[str, float], count: int) -> list[list[float]]:
    """``count`` bursts of ``ARRIVALS`` requests at once (after a warm-up request): each burst's TTFTs, sorted."""
    limits = httpx.Limits(max_connections=ARRIVALS * 2)
    async with httpx.AsyncClient(timeout=300.0, limits=limits) as client:
        model = (await client.get(base_url + "/models")).json()["data"][0]["id"]
        body = {"model": model, "prompt": scenarios.COUNT_PROMPT, "max_tokens": TOKENS, "temperature": 0,
                "stream": True, "logit_bias": bias}
        await first_token(client, base_url, body)
        out = []
        for _ in range(count):
            await asyncio.sleep(0.5)  # the server is idle again: the last burst's streams have ended
            ttfts = await asyncio.gather(*(first_token(client, base_url, body) for _ in range(ARRIVALS)))
            out.append(sorted(ttfts))
        return out


def main() -> None:
    """Alternate the two checkouts' servers, print each checkout's median and mean burst TTFT p50, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default="HEAD~1", help="the older commit to compare with")
    parser.add_argument("--models", default="smollm2-135m-instruct,gemma-3-270m")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--bursts", type=int, default=15, help="bursts per server")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/out/arrivals_compare.json")
    args = parser.parse_args()
    results: dict[str, Any] = {"machine": machine(), "command": " ".join(sys.argv), "baseline": args.baseline,
                               "models": {}}
    with worktree(args.baseline) as tree:
        old_names = not takes_vllm_names(tree / "src")
        for name in args.models.split(","):
            _, path = resolve_model(name)
            bias = eog_bias(path)
            setup = Setup(path, max_num_seqs=ARRIVALS, max_model_len=512, threads=args.threads)
            runs: dict[str, list[list[float]]] = {"streamserve": [], "baseline": []}
            for r in range(args.rounds):
                for system in ("streamserve", "baseline") if r % 2 == 0 else ("baseline", "streamserve"):
                    port = free_port()
                    baseline = system == "baseline"
                    cmd = command("streamserve", setup, port, None, old_names=baseline and old_names)
                    env = {**os.environ, "PYTHONPATH": str(tree / "src")} if baseline else None
                    with spawned(system, cmd, port, Path("benchmarks/out/arrivals") / name, env=env) as server:
                        runs[system] += asyncio.run(bursts(server.base_url, bias, args.bursts))
            results["models"][name] = runs
            for label, average in (("median", statistics.median), ("mean", statistics.mean)):
                p50 = {s: average([statistics.median(b) for b in runs[s]]) for s in runs}
                print(f"{name}: TTFT p50 of {ARRIVALS} arrivals, {label} of {len(runs['streamserve'])} bursts: "
                      f"this checkout {p50['streamserve']:.3f} s, {args.baseline} {p50['baseline']:.3f} s, "
                      f"{p50['streamserve'] / p50['baseline']:.2f}x", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
