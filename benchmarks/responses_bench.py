"""The Responses API's stream against chat's: TTFT and inter-token latency on the same prompt, 1 and 16 streams.

Run it alone on the machine (nothing else busy), from the repository root:

    .venv/bin/python benchmarks/responses_bench.py

One streamserve (16 lanes, a temporary --data-dir) serves three variants of the same request, the
same chat messages at temperature 0 with 128 output tokens: ``chat`` (``/v1/chat/completions``),
``responses`` (``/v1/responses``, stored: every event is appended to the SQLite event log as it is
sent) and ``responses-nostore`` (``store: false``: no database writes, so the difference between the
two Responses rows is the log's cost). Rounds alternate the variants' order so that drift in a shared
machine's speed spreads evenly. Each of N clients sends 2 requests per round in turn.

It writes ``docs/responses-bench.json`` and prints the markdown table for ``docs/performance.md``.
Target (issue #10): the stored Responses stream within 5% of chat in TTFT p50 and ITL p50.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from servers import Setup, running
from variants import arguments, results_of, summaries, table, write

from streamserve.bench import BenchClient, Prompt, RequestOptions, RequestRecord, run_level
from streamserve.models import resolve_model

PROMPT = "Count from 1 to 500, separated by commas."
VARIANTS = ("chat", "responses", "responses-nostore")


def _client(base_url: str, model: str, variant: str, tokens: int) -> tuple[BenchClient, Prompt]:
    endpoint = "chat" if variant == "chat" else "responses"
    extra = {"store": False} if variant == "responses-nostore" else {}
    options = RequestOptions(endpoint=endpoint, max_tokens=tokens, temperature=0.0, timeout=600.0)
    prompt = Prompt(variant, [{"role": "user", "content": PROMPT}], extra)
    return BenchClient(base_url, model=model, options=options), prompt


async def measure(base_url: str, levels: list[int], tokens: int, rounds: int) -> dict[str, Any]:
    """Every variant at every level, ``rounds`` times in rotating order; pooled summaries per (variant, level)."""
    async with BenchClient(base_url) as probe:
        model = (await probe.list_models())[0]
    records: dict[tuple[str, int], list[RequestRecord]] = {(v, n): [] for v in VARIANTS for n in levels}
    durations: dict[tuple[str, int], float] = dict.fromkeys(records, 0.0)
    for variant in VARIANTS:  # warm-up, discarded
        client, prompt = _client(base_url, model, variant, tokens)
        async with client:
            await client.send(prompt, stream=True)
    for round_ in range(rounds):
        order = VARIANTS[round_ % len(VARIANTS):] + VARIANTS[:round_ % len(VARIANTS)]
        for level in levels:
            for variant in order:
                client, prompt = _client(base_url, model, variant, tokens)
                async with client:
                    result = await run_level(client, [prompt], concurrency=level, requests=2 * level,
                                             duration=1800.0)
                records[variant, level].extend(result.records)
                durations[variant, level] += result.duration
                print(f"  round {round_ + 1} {variant:>18} x{level}: {result.summary.output_tokens_per_s:.1f} tok/s",
                      flush=True)
    return summaries(records, durations, tokens)


def main() -> None:
    """Run every model, write the JSON, print the tables."""
    parser = arguments(__doc__, rounds=3)
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    results = results_of(args, PROMPT)
    tables = []
    for name in args.models.split(","):
        _, path = resolve_model(name)
        setup = Setup(path, max_num_seqs=16, max_model_len=args.max_model_len, threads=args.threads)
        print(f"[{name}]", flush=True)
        with tempfile.TemporaryDirectory(prefix="responses-bench-") as data_dir, \
                running("streamserve", setup, None, Path("benchmarks/out/logs") / name,
                        extra=("--data-dir", data_dir)) as base_url:
            result = asyncio.run(measure(base_url, levels, args.tokens, args.rounds))
        results["models"][name] = result
        tables.append(table(name, result, levels, VARIANTS, reference="chat", label="variant"))
    write(args, "responses-bench.json", results, tables)


if __name__ == "__main__":
    main()
