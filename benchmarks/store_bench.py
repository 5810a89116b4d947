"""Stored Responses streams on PostgreSQL against SQLite: TTFT and inter-token latency, 1 and 16 streams.

Run it alone on the machine (nothing else busy), from the repository root:

    .venv/bin/python benchmarks/store_bench.py

It starts a throwaway PostgreSQL cluster (Debian's initdb/pg_ctl, as the tests do), then per model two
streamserve servers in turn, the same flags but for the store: ``sqlite`` (``--data-dir``, the default)
and ``postgresql`` (``--store postgresql://...``). Each serves the same stored, streamed
``/v1/responses`` request (every event appended to the store's log as it is sent) at temperature 0;
each of N clients sends 2 requests per round. Rounds alternate which store runs first.

It writes ``docs/store-bench.json`` and prints the markdown table for ``docs/performance.md``.
Target (issue 26): PostgreSQL within 5% of SQLite in TTFT p50 and ITL p50.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))

from servers import Setup, running
from tests.pgcluster import running_cluster
from variants import arguments, results_of, summaries, table, write

from streamserve.bench import BenchClient, Prompt, RequestOptions, RequestRecord, run_level
from streamserve.models import resolve_model

PROMPT = "Count from 1 to 500, separated by commas."
STORES = ("sqlite", "postgresql")


async def measure_one(base_url: str, level: int, tokens: int) -> tuple[list[RequestRecord], float]:
    """``2 * level`` stored streamed Responses requests at concurrency ``level``."""
    async with BenchClient(base_url) as probe:
        model = (await probe.list_models())[0]
    options = RequestOptions(endpoint="responses", max_tokens=tokens, temperature=0.0, timeout=600.0)
    prompt = Prompt("responses", [{"role": "user", "content": PROMPT}], {})
    async with BenchClient(base_url, model=model, options=options) as client:
        result = await run_level(client, [prompt], concurrency=level, requests=2 * level, duration=1800.0)
    return result.records, result.duration


def measure(setup: Setup, name: str, pg_url: str, levels: list[int], tokens: int,
            rounds: int) -> dict[str, Any]:
    """Both stores at every level, ``rounds`` times with the stores' order alternating."""
    records: dict[tuple[str, int], list[RequestRecord]] = {(s, n): [] for s in STORES for n in levels}
    durations: dict[tuple[str, int], float] = dict.fromkeys(records, 0.0)
    for round_ in range(rounds):
        order = STORES if round_ % 2 == 0 else STORES[::-1]
        for store in order:
            with tempfile.TemporaryDirectory(prefix="store-bench-") as data_dir:
                extra = ("--data-dir", data_dir) + (("--store", pg_url) if store == "postgresql" else ())
                with running("streamserve", setup, None, Path("benchmarks/out/logs") / name / store,
                             extra=extra) as base_url:
                    asyncio.run(measure_one(base_url, 1, tokens))  # warm-up, discarded
                    for level in levels:
                        recs, duration = asyncio.run(measure_one(base_url, level, tokens))
                        records[store, level].extend(recs)
                        durations[store, level] += duration
                        print(f"  round {round_ + 1} {store:>10} x{level}: {len(recs)} requests", flush=True)
    return summaries(records, durations, tokens)


def main() -> None:
    """Run every model on both stores, write the JSON, print the tables."""
    parser = arguments(__doc__, rounds=2)
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    results = results_of(args, PROMPT)
    tables = []
    with running_cluster() as cluster:
        for name in args.models.split(","):
            _, path = resolve_model(name)
            setup = Setup(path, max_num_seqs=16, max_model_len=args.max_model_len, threads=args.threads)
            print(f"[{name}]", flush=True)
            result = measure(setup, name, cluster.new_database("bench"), levels, args.tokens, args.rounds)
            results["models"][name] = result
            tables.append(table(name, result, levels, STORES, reference="sqlite", label="store"))
    write(args, "store-bench.json", results, tables)


if __name__ == "__main__":
    main()
