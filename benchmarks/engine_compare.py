"""The regression guard: this checkout's engine against an older commit and llama-server, side by side in one run.

Run it alone on the machine whenever the engine changes, from the repository root:

    python benchmarks/engine_compare.py --baseline HEAD~1

The baseline commit is checked out into a temporary git worktree and served with ``PYTHONPATH`` pointing
at its ``src`` (the venv's compiled llama-cpp-python serves both). For each model and each of
``--rounds`` rounds, every system runs, in an order that rotates from round to round, three loads:

- **16 streams**: 16 lanes of ``--max-model-len`` tokens; 16 clients each stream 2 completions of 128 tokens
  from the prompt "1, 2, 3, 4, 5, 6, 7, 8," (the engine benchmark's uniform load, end of generation
  biased away); output tokens/s over the wall time, TTFT p50 and p99, inter-token latency p99;
- **one stream**: one client, 4 completions in turn, on the same server: tokens/s (each of these two
  loads ``--repeats`` times per round, each figure the median of the repeats);
- **a long prompt alone, cold**: 8 lanes of 4,096 tokens, a ~3,500-token prompt never sent before:
  its time to first token.

It prints the medians over rounds and the ratios of this checkout to the baseline and to llama-server,
and writes every figure to ``--out`` (JSON).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import scenarios
from engine_bench import eog_bias, machine
from report import COMPARE_BEGIN, COMPARE_END
from servers import Setup, command, free_port, spawned

from streamserve.bench import BenchClient, Prompt, RequestOptions, run_level
from streamserve.models import resolve_model

LONG_LANES, LONG_CTX = 8, 4096


@contextmanager
def worktree(rev: str) -> Iterator[Path]:
    """A temporary checkout of ``rev`` (removed afterwards)."""
    path = Path(tempfile.mkdtemp(prefix="streamserve-baseline-"))
    subprocess.run(["git", "worktree", "add", "--detach", str(path), rev], check=True, capture_output=True)
    try:
        yield path
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(path)], check=False, capture_output=True)


def takes_vllm_names(src: Path) -> bool:
    """Whether the checkout whose sources are ``src`` takes ``--max-num-seqs`` (older ones: ``--parallel``)."""
    help_text = subprocess.run([sys.executable, "-m", "streamserve", "serve", "--help"], check=True,
                               capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(src)}).stdout
    return "--max-num-seqs" in help_text


@contextmanager
def serving(system: str, setup: Setup, args: argparse.Namespace, baseline_src: Path, log_dir: Path) -> Iterator[str]:
    """Start ``system`` (``streamserve``, ``baseline`` or ``llama-server``); yield its base URL."""
    port = free_port()
    kind = "llama-server" if system == "llama-server" else "streamserve"
    cmd = command(kind, setup, port, args.llama_server, old_names=system == "baseline" and args.baseline_old_names)
    env = {**os.environ, "PYTHONPATH": str(baseline_src)} if system == "baseline" else None
    with spawned(system, cmd, port, log_dir, env=env) as server:
        yield server.base_url


async def uniform(base_url: str, bias: dict[str, float], tokens: int, repeats: int) -> dict[str, Any]:
    """16 clients x 2 streamed completions, then one client x 4, each ``repeats`` times on the same server.

    Each figure is the median over the repeats: 16 simultaneous arrivals land in one step or two, which
    moves a single load's tokens/s by about 10%, more than the 5% this guard is for.
    """
    async with BenchClient(base_url) as probe:
        model = (await probe.list_models())[0]
    prompt = Prompt("count", [], {"prompt": scenarios.COUNT_PROMPT, "logit_bias": bias})
    options = RequestOptions(endpoint="completions", max_tokens=tokens, temperature=0.0, timeout=900.0)
    out: dict[str, Any] = {}
    async with BenchClient(base_url, model=model, options=options) as client:
        await client.send(prompt, stream=True)  # warm-up, discarded
        for name, clients, requests in (("16 streams", 16, 32), ("one stream", 1, 4)):
            summaries = []
            for _ in range(repeats):
                result = await run_level(client, [prompt], concurrency=clients, requests=requests, duration=1800.0)
                summary = result.summary.to_dict()
                summary["short_requests"] = sum(1 for r in result.records if r.ok and r.output_tokens != tokens)
                summaries.append(summary)
            out[name] = {**median_of(summaries), "repeats": summaries}
    return out


def median_of(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """Each numeric figure's median over the summaries; anything else as the first one has it."""
    def numeric(value: Any) -> bool:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return {key: statistics.median(s[key] for s in summaries) if all(numeric(s[key]) for s in summaries)
            else value for key, value in summaries[0].items()}


async def long_prompt(base_url: str, words: int) -> dict[str, Any]:
    """One never-seen ~3,500-token prompt alone: its TTFT and prompt size."""
    async with BenchClient(base_url) as probe:
        model = (await probe.list_models())[0]
    options = RequestOptions(endpoint="completions", max_tokens=8, temperature=0.0, timeout=900.0)
    text = f"Report {uuid.uuid4().hex}. " + " ".join((scenarios.LONG_TEXT * 120).split()[:words])
    async with BenchClient(base_url, model=model, options=options) as client:
        record = await client.send(Prompt("long", [], {"prompt": text}), stream=True)
    return {"ttft": record.ttft, "prompt_tokens": record.prompt_tokens, "ok": record.ok}


def one_round(system: str, name: str, path: Path, args: argparse.Namespace, baseline_src: Path,
              bias: dict[str, float]) -> dict[str, Any]:
    """One system's three loads on one model."""
    logs = Path("benchmarks/out/compare") / name
    uniform_setup = Setup(path, max_num_seqs=16, max_model_len=args.max_model_len, threads=args.threads)
    with serving(system, uniform_setup, args, baseline_src, logs) as base_url:
        result = asyncio.run(uniform(base_url, bias, args.tokens, args.repeats))
    long_setup = Setup(path, max_num_seqs=LONG_LANES, max_model_len=LONG_CTX, threads=args.threads)
    with serving(system, long_setup, args, baseline_src, logs) as base_url:
        result["long prompt"] = asyncio.run(long_prompt(base_url, args.long_words))
    return result


FIGURES = [  # (load, figure, label, higher is better)
    ("16 streams", "output_tokens_per_s", "16 streams tok/s", True),
    ("16 streams", "ttft_p50", "16 streams TTFT p50 (s)", False),
    ("16 streams", "ttft_p99", "16 streams TTFT p99 (s)", False),
    ("16 streams", "itl_p99", "16 streams ITL p99 (s)", False),
    ("one stream", "output_tokens_per_s", "one stream tok/s", True),
    ("long prompt", "ttft", "long prompt TTFT (s)", False),
]


def table(name: str, runs: dict[str, list[dict[str, Any]]], baseline: str) -> list[str]:
    """Markdown: each figure's median per system, and this checkout's ratios to the others."""
    systems = list(runs)
    lines = [f"**{name}** (median of {len(runs['streamserve'])} rounds; baseline `{baseline}`)", "",
             "| figure | " + " | ".join(systems) + " | vs baseline | vs llama-server |",
             "|---|" + "---|" * (len(systems) + 2)]
    for load, key, label, _ in FIGURES:
        medians = {}
        for system in systems:
            values = [r[load].get(key) for r in runs[system] if r[load].get(key) is not None]
            medians[system] = statistics.median(values) if values else None
        ours = medians["streamserve"]
        ratios = [f"{ours / medians[s]:.2f}x" if ours and medians.get(s) else "n/a"
                  for s in ("baseline", "llama-server")]
        cells = [f"{medians[s]:.3g}" if medians[s] is not None else "n/a" for s in systems]
        lines.append(f"| {label} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
    return lines


def main() -> None:
    """Run every round, print the tables, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default="HEAD~1", help="the older commit to compare with")
    parser.add_argument("--models", default="smollm2-135m-instruct,gemma-3-270m")
    parser.add_argument("--systems", default="streamserve,baseline,llama-server")
    parser.add_argument("--llama-server", default=str(Path.home() / ".cache/streamserve-bench/llama-server"))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each load per server and round (median)")
    parser.add_argument("--max-model-len", type=int, default=512, help="per-sequence context of the 16-stream load")
    parser.add_argument("--long-words", type=int, default=2600, help="words of the long prompt (~3,500 tokens)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/out/engine_compare.json")
    parser.add_argument("--docs", default="docs/performance.md",
                        help="the page whose engine comparison section is rewritten ('' for none)")
    args = parser.parse_args()
    rev = subprocess.run(["git", "rev-parse", "--short", args.baseline], check=True, capture_output=True,
                         text=True).stdout.strip()
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], check=True, capture_output=True,
                          text=True).stdout.strip()
    results: dict[str, Any] = {"machine": machine(), "command": " ".join(sys.argv), "head": head, "baseline": rev,
                               "repeats": args.repeats, "models": {}}
    systems = args.systems.split(",")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with worktree(rev) as tree:
        args.baseline_old_names = not takes_vllm_names(tree / "src")
        for name in args.models.split(","):
            _, path = resolve_model(name)
            bias = eog_bias(path)
            runs: dict[str, list[dict[str, Any]]] = {s: [] for s in systems}
            for r in range(args.rounds):
                for system in systems[r % len(systems):] + systems[: r % len(systems)]:
                    print(f"[{name}] round {r + 1}: {system}", flush=True)
                    started = time.monotonic()
                    runs[system].append(one_round(system, name, path, args, tree / "src", bias))
                    print(f"  {time.monotonic() - started:.0f} s", flush=True)
            results["models"][name] = runs
            out.write_text(json.dumps(results, indent=2))
    section = "\n".join(doc_section(results))
    print(section)
    if args.docs:
        write_section(Path(args.docs), section)


def doc_section(results: dict[str, Any]) -> list[str]:
    """The page's first section: when, where, what, and each model's table."""
    mach = results["machine"]
    lines = [COMPARE_BEGIN, f"## The engine against the previous commit and llama-server ({mach['date'][:10]})", "",
             f"`{results['command']}`, alone on the machine ({mach['cpu']}, {mach['cores']} cores): this checkout "
             f"(`{results['head']}`) against `{results['baseline']}` and llama-server, each round in a new order. "
             "16 streams: 16 lanes, 16 clients x 2 completions of 128 tokens; one stream: 4 completions in turn; "
             f"each {results.get('repeats', 1)} times per server and round (median); "
             "long prompt: a ~3,500-token prompt alone, cold, on 8 lanes of 4,096 tokens.", ""]
    for name, runs in results["models"].items():
        lines += [*table(name, runs, results["baseline"]), ""]
    return [*lines, COMPARE_END]


def write_section(path: Path, section: str) -> None:
    """Put ``section`` first on the page (after its title), replacing the one an earlier run wrote."""
    text = path.read_text() if path.exists() else "# Performance\n"
    start, end = text.find(COMPARE_BEGIN), text.find(COMPARE_END)
    if start >= 0 and end >= 0:
        text = text[:start] + section + text[end + len(COMPARE_END):]
    else:
        title, _, rest = text.partition("\n\n")
        text = title + "\n\n" + section + "\n\n" + rest
    path.write_text(text)


if __name__ == "__main__":
    main()
