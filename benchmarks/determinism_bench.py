"""What determinism costs and what it buys: divergence under load, the cost of --deterministic, the cache cost.

Run it alone on the machine (nothing else busy), from the repository root (about 5 to 6 minutes):

    OMP_WAIT_POLICY=passive .venv/bin/python benchmarks/determinism_bench.py

For each model, one streamserve (16 lanes) per mode, default and ``--deterministic``:

(a) divergence under load, default mode (``--divergence-both``: in both): N greedy chat requests
    (distinct questions, ``logprobs``) are each sent alone, then again while 8 other streams with
    long prompts run and keep arriving; the fraction whose text differs from its alone-run, and the
    fraction whose logprobs differ in any bit;
(b) cost: TTFT and output tokens/s of streamed greedy requests at 1, 8 and 16 streams (one request
    per stream);
(c) cache cost: a two-turn chat; the second turn's ``cached_tokens`` against what the prompt cache
    reused before prompts were read on the grid (the first prompt plus its answer, less one).

It writes ``docs/determinism-bench.json`` and prints the markdown tables for ``docs/determinism.md``.
``--quick`` (N=4, 1 and 8 streams, one model) is a smoke run of about two minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))

from servers import Setup, running

from streamserve.bench import BenchClient, Prompt, RequestOptions, run_level, summarize
from streamserve.models import resolve_model

QUESTIONS = ("Where should I travel next summer?", "What should I cook tonight?", "How do lighthouses work?",
             "Why is the sky blue?", "How do I learn to swim?", "What is a good first pet?",
             "How are bridges built?", "What makes bread rise?", "Why do cats purr?", "How do bees make honey?",
             "What is the tallest mountain?", "How does a compass work?", "Why do leaves change colour?",
             "How do trains stay on the rails?", "What is a black hole?", "How is glass made?")
SYSTEM = ("You are a friendly assistant who answers in a few plain sentences, gives one concrete example "
          "and avoids lists. ") * 2
BACKGROUND = "the tide came in over the stones and went out again, and the gulls rose and settled. " * 40
TIMEOUT_S = 600.0


def _chat(http: httpx.Client, model: str, messages: list[dict[str, str]], tokens: int) -> dict[str, Any]:
    body = {"model": model, "messages": messages, "max_tokens": tokens, "temperature": 0.0, "logprobs": True}
    response = http.post("/chat/completions", json=body)
    response.raise_for_status()
    return response.json()  # type: ignore[no-any-return]


def _answer(reply: dict[str, Any]) -> tuple[str, list[tuple[str, float]]]:
    choice = reply["choices"][0]
    return choice["message"]["content"], [(t["token"], t["logprob"]) for t in choice["logprobs"]["content"]]


def divergence(base_url: str, model: str, n: int, tokens: int) -> dict[str, Any]:
    """(a): each of ``n`` greedy requests alone, then beside 8 streams with long prompts arriving."""
    questions = [QUESTIONS[i % len(QUESTIONS)] + f" (#{i})" for i in range(n)]
    requests = [[{"role": "system", "content": SYSTEM}, {"role": "user", "content": q}] for q in questions]
    stop = threading.Event()

    def background(i: int) -> None:
        with httpx.Client(base_url=base_url, timeout=TIMEOUT_S) as http:
            while not stop.is_set():
                text = f"Notes {i} {uuid.uuid4().hex}: {BACKGROUND} Summarise."
                _chat(http, model, [{"role": "user", "content": text}], 48)

    with httpx.Client(base_url=base_url, timeout=TIMEOUT_S) as http:
        alone = [_answer(_chat(http, model, r, tokens)) for r in requests]
        threads = [threading.Thread(target=background, args=(i,), daemon=True) for i in range(8)]
        for thread in threads:
            thread.start()
            time.sleep(0.25)
        try:
            loaded = [_answer(_chat(http, model, r, tokens)) for r in requests]
        finally:
            stop.set()
            for thread in threads:
                thread.join(TIMEOUT_S)
    text_diff = sum(a[0] != b[0] for a, b in zip(alone, loaded, strict=True))
    logprob_diff = sum(a != b for a, b in zip(alone, loaded, strict=True))
    return {"requests": n, "text_differs": text_diff / n, "logprobs_differ": logprob_diff / n}


async def cost(base_url: str, model: str, levels: list[int], tokens: int) -> dict[str, Any]:
    """(b): streamed greedy requests at each level; TTFT and output tokens/s."""
    options = RequestOptions(endpoint="chat", max_tokens=tokens, temperature=0.0, timeout=TIMEOUT_S)
    prompt = Prompt("count", [{"role": "user", "content": "Count from 1 to 500, separated by commas."}], {})
    out = {}
    async with BenchClient(base_url, model=model, options=options) as client:
        await client.send(prompt, stream=True)  # warm-up, discarded
        for level in levels:
            result = await run_level(client, [prompt], concurrency=level, requests=level, duration=1800.0)
            summary = summarize(result.records, concurrency=level, duration=result.duration,
                                planned=len(result.records)).to_dict()
            out[str(level)] = {k: summary[k] for k in ("ttft_p50", "ttft_p99", "itl_p50", "output_tokens_per_s",
                                                        "errors")}
    return out


def cache_cost(base_url: str, model: str, tokens: int) -> dict[str, Any]:
    """(c): a second chat turn's cached_tokens, and what the cache reused before the grid."""
    first_turn = [{"role": "system", "content": f"Session {uuid.uuid4().hex}. {SYSTEM}"},
                  {"role": "user", "content": "What is the capital of France?"}]
    with httpx.Client(base_url=base_url, timeout=TIMEOUT_S) as http:
        first = _chat(http, model, first_turn, tokens)
        second_turn = [*first_turn, {"role": "assistant", "content": first["choices"][0]["message"]["content"]},
                       {"role": "user", "content": "And of Spain?"}]
        second = _chat(http, model, second_turn, tokens)
    usage = second["usage"]
    before = first["usage"]["prompt_tokens"] + first["usage"]["completion_tokens"] - 1
    return {"prompt_tokens": usage["prompt_tokens"], "cached_tokens": usage["prompt_tokens_details"]["cached_tokens"],
            "cached_before_grid": min(before, usage["prompt_tokens"] - 1)}


def tables(results: dict[str, Any]) -> str:
    """Markdown tables for docs/determinism.md."""
    lines = ["| model | mode | requests | text differs under load | logprobs differ under load |",
             "|---|---|---|---|---|"]
    for model, modes in results.items():
        for mode, r in modes.items():
            if "divergence" not in r:
                continue
            d = r["divergence"]
            lines.append(f"| {model} | {mode} | {d['requests']} | {d['text_differs']:.0%} | "
                         f"{d['logprobs_differ']:.0%} |")
    lines += ["", "| model | mode | streams | TTFT p50 (ms) | ITL p50 (ms) | output tok/s |",
              "|---|---|---|---|---|---|"]
    for model, modes in results.items():
        for mode, r in modes.items():
            for level, s in r["cost"].items():
                ttft = "–" if s["ttft_p50"] is None else f"{s['ttft_p50'] * 1000:.0f}"
                itl = "–" if s["itl_p50"] is None else f"{s['itl_p50'] * 1000:.1f}"
                lines.append(f"| {model} | {mode} | {level} | {ttft} | {itl} | {s['output_tokens_per_s']:.1f} |")
    lines += ["", "| model | second turn's prompt tokens | cached (grid) | cached before the grid |",
              "|---|---|---|---|"]
    for model, modes in results.items():
        c = modes["default"]["cache"]
        lines.append(f"| {model} | {c['prompt_tokens']} | {c['cached_tokens']} | {c['cached_before_grid']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Run every model in both modes, write the JSON, print the tables."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="gemma-3-270m,smollm2-135m-instruct")
    parser.add_argument("--requests", type=int, default=8, help="greedy requests compared alone and under load")
    parser.add_argument("--divergence-both", action="store_true", help="measure (a) with --deterministic too")
    parser.add_argument("--levels", default="1,8,16")
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 4 requests, 1 and 8 streams, one model")
    parser.add_argument("--out", default="docs")
    args = parser.parse_args()
    if args.quick:
        args.requests, args.levels, args.models = 4, "1,8", args.models.split(",")[0]
    levels = [int(x) for x in args.levels.split(",")]
    results: dict[str, Any] = {}
    for name in args.models.split(","):
        _, path = resolve_model(name)
        setup = Setup(path, max_num_seqs=16, max_model_len=2048, threads=args.threads)
        for mode, extra in (("default", ()), ("deterministic", ("--deterministic",))):
            print(f"[{name} {mode}]", flush=True)
            with running("streamserve", setup, None, Path("benchmarks/out/logs") / name / mode,
                         extra=extra) as base_url:
                with httpx.Client(base_url=base_url, timeout=30) as http:
                    model = http.get("/models").json()["data"][0]["id"]
                entry: dict[str, Any] = {"cost": asyncio.run(cost(base_url, model, levels, args.tokens * 2))}
                if mode == "default" or args.divergence_both:
                    entry["divergence"] = divergence(base_url, model, args.requests, args.tokens)
                if mode == "default":
                    entry["cache"] = cache_cost(base_url, model, args.tokens)
            results.setdefault(name, {})[mode] = entry
            print(json.dumps(entry), flush=True)
    date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    payload = {"command": " ".join(sys.argv), "date": date, "results": results}
    if not args.quick:
        (Path(args.out) / "determinism-bench.json").write_text(json.dumps(payload, indent=2))
    print("\n" + tables(results))


if __name__ == "__main__":
    main()
