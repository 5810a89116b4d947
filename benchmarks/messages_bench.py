"""Anthropic's Messages stream against chat's: TTFT and inter-token latency on the same prompt, 1 and 16 streams.

Run it alone on the machine (nothing else busy), from the repository root:

    .venv/bin/python benchmarks/messages_bench.py

One streamserve (16 lanes, a temporary --data-dir) serves two variants of the same request, the same user
message at temperature 0 with 128 output tokens: ``chat`` (``/v1/chat/completions``, counting ``content``
deltas) and ``messages`` (``/v1/messages``, counting ``text_delta`` events). TTFT is the time from sending
the request to the first delta with text; ITL is the time between consecutive text deltas (per chunk, as
vLLM defines it). Each variant gets a discarded warm-up request; rounds alternate the variants' order so a
shared machine's drift spreads evenly. At one stream the variants run in turn; at N streams the N clients
alternate between the variants in one load (N/2 each), so both are measured in the same engine steps:
16 simultaneous arrivals are admitted over one or two steps depending on when they land, which moves a
round's TTFT by a whole step (the same variant's TTFT p50 moved from 51 to 100 ms between separate
loads of one server). Each client sends
``--requests`` requests in turn.

It writes ``docs/messages-bench.json`` and prints the markdown table for ``docs/performance.md``.
Target (issue #27): the Messages stream within 5% of chat in TTFT p50 and ITL p50.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))

from servers import Setup, running
from variants import arguments, results_of, table, write

from streamserve.models import resolve_model

PROMPT = "Count from 1 to 500, separated by commas."
VARIANTS = ("chat", "messages")


def _body(variant: str, model: str, tokens: int) -> tuple[str, dict[str, Any]]:
    messages = [{"role": "user", "content": PROMPT}]
    if variant == "chat":
        return "/chat/completions", {"model": model, "messages": messages, "max_tokens": tokens, "temperature": 0,
                                     "stream": True, "stream_options": {"include_usage": True}}
    return "/messages", {"model": model, "messages": messages, "max_tokens": tokens, "temperature": 0,
                         "stream": True}


def _text_of(variant: str, data: dict[str, Any]) -> str:
    """The text a chat chunk or a Messages event carries ("" for any other event)."""
    if variant == "chat":
        return "".join(c["delta"].get("content") or "" for c in data.get("choices") or ())
    if data.get("type") == "content_block_delta" and data["delta"].get("type") == "text_delta":
        return str(data["delta"]["text"])
    return ""


def _output_tokens(variant: str, data: dict[str, Any]) -> int | None:
    if variant == "chat":
        return (data.get("usage") or {}).get("completion_tokens")
    return (data.get("usage") or {}).get("output_tokens") if data.get("type") == "message_delta" else None


async def one(http: httpx.AsyncClient, variant: str, model: str, tokens: int) -> dict[str, Any]:
    """One streamed request: its TTFT, its inter-delta gaps and the output tokens the server reported."""
    path, body = _body(variant, model, tokens)
    sent = time.perf_counter()
    stamps: list[float] = []
    produced = 0
    async with http.stream("POST", path, json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            data = json.loads(line[len("data: "):])
            if _text_of(variant, data):
                stamps.append(time.perf_counter())
            produced = _output_tokens(variant, data) or produced
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    return {"ttft": stamps[0] - sent if stamps else None, "gaps": gaps, "tokens": produced}


async def level(base_url: str, variants: list[str], model: str, tokens: int,
                requests: int) -> list[tuple[str, dict[str, Any]]]:
    """One client per entry of ``variants``, all at once, each sending ``requests`` requests one after another."""
    async with httpx.AsyncClient(base_url=base_url, timeout=600) as http:
        async def client(variant: str) -> list[tuple[str, dict[str, Any]]]:
            return [(variant, await one(http, variant, model, tokens)) for _ in range(requests)]
        return [r for rs in await asyncio.gather(*(client(v) for v in variants)) for r in rs]


def clients_of(clients: int, round_: int) -> list[list[str]]:
    """The loads of one round at one level: each a list of clients' variants, run one load after the other.

    One stream: chat alone, then messages alone (the order alternating by round). More streams: one load
    in which the clients alternate between the variants (which variant the first client takes alternating
    by round), so both run in the same engine steps and a round's admission timing cannot favour either.
    """
    order = list(VARIANTS if round_ % 2 == 0 else VARIANTS[::-1])
    if clients == 1:
        return [[variant] for variant in order]
    return [[order[i % 2] for i in range(clients)]]


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summarize(records: list[dict[str, Any]], tokens: int) -> dict[str, Any]:
    """TTFT and ITL percentiles pooled over the records, and how many came back short of ``tokens``."""
    ttfts = [r["ttft"] for r in records if r["ttft"] is not None]
    gaps = [g for r in records for g in r["gaps"]]
    return {"requests": len(records), "ttft_p50": _pct(ttfts, 0.5), "ttft_p99": _pct(ttfts, 0.99),
            "itl_p50": _pct(gaps, 0.5), "itl_p99": _pct(gaps, 0.99),
            "itl_mean": statistics.fmean(gaps) if gaps else None,
            "short_requests": sum(1 for r in records if r["tokens"] != tokens)}


async def measure(base_url: str, levels: list[int], tokens: int, rounds: int, requests: int,
                  single_requests: int, warmup: bool) -> dict[str, Any]:
    """Every variant at every level, ``rounds`` times in alternating order; pooled summaries."""
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
        model = (await http.get("/models")).json()["data"][0]["id"]
    records: dict[tuple[str, int], list[dict[str, Any]]] = {(v, n): [] for v in VARIANTS for n in levels}
    if warmup:
        for variant in VARIANTS:
            await level(base_url, [variant], model, tokens, 1)
    for round_ in range(rounds):
        for clients in levels:
            for load in clients_of(clients, round_):
                count = single_requests if clients == 1 else requests
                for variant, record in await level(base_url, load, model, tokens, count):
                    records[variant, clients].append(record)
            print(f"  round {round_ + 1} x{clients}: " + ", ".join(
                f"{v} {len(records[v, clients])} requests" for v in VARIANTS), flush=True)
    out: dict[str, Any] = {}
    for (variant, clients), recs in records.items():
        out.setdefault(variant, {})[str(clients)] = summarize(recs, tokens)
    return out


def main() -> None:
    """Run every model, write the JSON, print the tables."""
    parser = arguments(__doc__, rounds=4)
    parser.add_argument("--requests", type=int, default=2, help="requests per client per level and round")
    parser.add_argument("--single-requests", type=int, default=8,
                        help="requests per round at one stream (one client has few samples otherwise)")
    parser.add_argument("--no-warmup", action="store_true", help="skip the discarded warm-up requests")
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    results = results_of(args, PROMPT)
    tables = []
    for name in args.models.split(","):
        _, path = resolve_model(name)
        setup = Setup(path, max_num_seqs=16, max_model_len=args.max_model_len, threads=args.threads)
        print(f"[{name}]", flush=True)
        with tempfile.TemporaryDirectory(prefix="messages-bench-") as data_dir, \
                running("streamserve", setup, None, Path("benchmarks/out/logs") / name,
                        extra=("--data-dir", data_dir)) as base_url:
            result = asyncio.run(measure(base_url, levels, args.tokens, args.rounds, args.requests,
                                         args.single_requests, not args.no_warmup))
        results["models"][name] = result
        tables.append(table(name, result, levels, VARIANTS, reference="chat"))
    write(args, "messages-bench.json", results, tables)


if __name__ == "__main__":
    main()
