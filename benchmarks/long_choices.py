"""n choices of one long prompt: how many prompt tokens the engine reads, and how long the request takes.

A prompt that a running sequence is reading waits for that read and copies it (``Scheduler.admit``),
so the later choices of an ``n`` > 1 request read only the tail the grid leaves them. With
``--baseline-src`` (the ``src`` directory of an older checkout) the same requests go to that
streamserve too, in the same run, as the comparison. Non-streamed completions through the official
client, ``n`` = 1, 2 and 4, at temperature 0, each prompt new to the server; prompt tokens read come
from /metrics (admitted minus cached). Median of ``--rounds``.

    git worktree add --detach /tmp/before 69553bd
    python benchmarks/long_choices.py --baseline-src /tmp/before/src   # docs/long_choices.json, a table
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from engine_bench import machine
from openai import OpenAI
from servers import Setup, running

from streamserve.bench.prometheus import parse_metrics
from streamserve.models import resolve_model

WORDS = "The harbour master counts the boats that come in before the tide turns. "


def _prompt_tokens_read(base_url: str) -> float:
    """Prompt tokens the server has read so far: admitted minus served from the prompt cache."""
    metrics = parse_metrics(httpx.get(base_url.removesuffix("/v1") + "/metrics", timeout=30).text)
    return metrics["streamserve:prompt_tokens_total"] - metrics["streamserve:prompt_tokens_cached_total"]


def measure(base_url: str, n: int, round_: int, repeats: int) -> dict[str, float]:
    """One request: wall seconds and prompt tokens read for ``n`` choices of a new long prompt."""
    read_before = _prompt_tokens_read(base_url)
    with OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=1800) as client:
        model = client.models.list().data[0].id
        start = time.perf_counter()
        reply = client.completions.create(model=model,
                                          prompt=f"Log {n}-{round_}. " + WORDS * repeats,
                                          max_tokens=8, n=n, temperature=0.0)
        seconds = time.perf_counter() - start
    read = _prompt_tokens_read(base_url) - read_before
    assert reply.usage is not None and len(reply.choices) == n
    return {"seconds": seconds, "prompt_tokens": reply.usage.prompt_tokens, "read": read}


def main() -> None:
    """Each streamserve in turn on one model; JSON to ``--out``, a markdown table to stdout."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--baseline-src", help="the src directory of another streamserve checkout to compare")
    parser.add_argument("--repeats", type=int, default=100, help="copies of the sentence: about 14 tokens each")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="docs/long_choices.json")
    args = parser.parse_args()
    _, path = resolve_model(args.model)
    setup = Setup(path, max_num_seqs=8, max_model_len=4096, threads=args.threads)
    results: dict[str, Any] = {"machine": machine(), "command": " ".join(sys.argv), "model": args.model,
                               "systems": {}}
    systems = [("streamserve", str(Path(__file__).resolve().parents[1] / "src"))]
    if args.baseline_src:
        systems.append(("baseline", args.baseline_src))
    for label, src in systems:
        os.environ["PYTHONPATH"] = src  # the server process imports streamserve from there
        with running("streamserve", setup, None, Path("benchmarks/out/logs/long_choices"), label=label) as url:
            rows = {}
            for n in (1, 2, 4):
                runs = [measure(url, n, r, args.repeats) for r in range(args.rounds)]
                rows[n] = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
            results["systems"][label] = {"src": src, "rows": rows}
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print("| system | n | prompt tokens | prompt tokens read | seconds (median) |")
    print("|---|---|---|---|---|")
    for label, system in results["systems"].items():
        for n, row in system["rows"].items():
            print(f"| {label} | {n} | {row['prompt_tokens']:.0f} | {row['read']:.0f} | {row['seconds']:.1f} |")


if __name__ == "__main__":
    main()
