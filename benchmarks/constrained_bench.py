"""Constrained decoding's cost: inter-token latency of JSON-schema streams against free-text streams.

Run it alone on the machine, from the repository root:

    .venv/bin/python benchmarks/constrained_bench.py

For each model it starts streamserve (16 lanes), then at 1 and 16 concurrent streams runs each of N
clients twice with the same chat prompt, once without a grammar and once with ``response_format`` set
to a JSON schema whose array never has to end, so both kinds produce ``--tokens`` tokens (end of
generation is biased away for the free text; ``short`` counts requests that stopped early anyway).
It writes ``docs/constrained.json`` and prints the markdown section for ``docs/performance.md``.
Targets (issue 9): constrained ITL within 1.15x of unconstrained at 1 stream, 1.25x at 16.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from engine_bench import eog_bias, machine
from servers import Setup, running

from streamserve.bench import BenchClient, Prompt, RequestOptions, run_level
from streamserve.models import resolve_model

SCHEMA = {
    "type": "object",
    "properties": {"title": {"type": "string"}, "notes": {"type": "array", "items": {"type": "string"}}},
    "required": ["title", "notes"],
    "additionalProperties": False,
}
MESSAGES = [{"role": "user", "content": "Write notes about the history of bread, as many as you can."}]
TARGETS = {1: 1.15, 16: 1.25}


async def measure(base_url: str, levels: list[int], tokens: int, bias: dict[str, float]) -> dict[str, Any]:
    """Per level and kind (free, schema): the level summary, plus how many requests came back short."""
    async with BenchClient(base_url) as probe:
        model = (await probe.list_models())[0]
    options = RequestOptions(endpoint="chat", max_tokens=tokens, temperature=0.0, timeout=1200.0)
    kinds = {
        "free": Prompt("free", MESSAGES, {"logit_bias": bias}),
        "schema": Prompt("schema", MESSAGES, {"logit_bias": bias, "response_format": {
            "type": "json_schema", "json_schema": {"name": "notes", "strict": True, "schema": SCHEMA}}}),
    }
    out: dict[str, Any] = {}
    async with BenchClient(base_url, model=model, options=options) as client:
        for prompt in kinds.values():
            await client.send(prompt, stream=True)  # warm-up, discarded
        for level in levels:
            for kind, prompt in kinds.items():
                result = await run_level(client, [prompt], concurrency=level, requests=2 * level, duration=3600.0)
                summary = result.summary.to_dict()
                summary["short_requests"] = sum(1 for r in result.records if r.ok and r.output_tokens != tokens)
                out.setdefault(str(level), {})[kind] = summary
    return out


def section(results: dict[str, Any]) -> str:
    """The markdown for docs/performance.md."""
    lines = ["## Constrained decoding (JSON schema) against free text", "",
             f"- machine: {results['machine']['cpu']}, {results['machine']['cores']} cores; "
             f"{results['machine']['date']}; command: `benchmarks/constrained_bench.py`",
             f"- chat, {results['tokens']} tokens per request, greedy; each of N clients streams 2 requests; "
             "ITL = gap between content chunks.", ""]
    for model in results["models"]:
        lines += [f"### {model['model']}", "",
                  "| streams | kind | ITL p50 (ms) | ITL p99 (ms) | output tok/s | short | p50 ratio | p99 ratio | "
                  "target |", "|---|---|---|---|---|---|---|---|---|"]
        for level, kinds in model["levels"].items():
            free = kinds["free"]
            for kind, s in kinds.items():
                ratios = ["", "", ""]
                if kind == "schema" and free["itl_p50"] and free["itl_p99"]:
                    r50, r99 = s["itl_p50"] / free["itl_p50"], s["itl_p99"] / free["itl_p99"]
                    goal = TARGETS.get(int(level))
                    met = r50 <= goal and r99 <= goal if goal else None
                    verdict = "" if goal is None else ("met" if met else "**missed**") + f" (p50 and p99 <= {goal}x)"
                    ratios = [f"{r50:.2f}x", f"{r99:.2f}x", verdict]
                lines.append(f"| {level} | {kind} | {s['itl_p50'] * 1e3:.1f} | {s['itl_p99'] * 1e3:.1f} | "
                             f"{s['output_tokens_per_s']:.1f} | {s['short_requests']} | {' | '.join(ratios)} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="smollm2-135m-instruct,gemma-3-270m")
    parser.add_argument("--levels", default="1,16")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--max-model-len", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="docs/constrained.json", help="where the JSON goes ('' for nowhere)")
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    results: dict[str, Any] = {"machine": machine(), "tokens": args.tokens, "schema": SCHEMA, "models": []}
    for name in args.models.split(","):
        _, path = resolve_model(name)
        setup = Setup(path, max_num_seqs=16, max_model_len=args.max_model_len, threads=args.threads)
        print(f"[{name}] streamserve", flush=True)
        with running("streamserve", setup, None, Path("benchmarks/out/logs") / name) as base_url:
            levels_out = asyncio.run(measure(base_url, levels, args.tokens, eog_bias(path)))
        results["models"].append({"model": name, "levels": levels_out})
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(section(results))


if __name__ == "__main__":
    main()
