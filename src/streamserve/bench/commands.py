"""Running ``bench compare`` and ``bench load`` from their parsed arguments, printing with rich.

``cli.run_bench`` imports this module only once the ``bench`` extra (rich, matplotlib) is known to
be installed; matplotlib itself is imported only when a plot is drawn.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from rich.console import Console

from . import report
from .client import BenchClient
from .compare import run_compare
from .load import run_sweep
from .prompts import Prompt, builtin_prompts, load_prompts, user_prompt
from .record import RequestFailedError, RequestOptions

EXIT_OK, EXIT_ALL_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def run(args: argparse.Namespace) -> int:
    """Run the parsed ``bench`` subcommand; return the exit status (0 ok, 1 all failed, 2 usage, 130 interrupted)."""
    console = Console(width=None if sys.stdout.isatty() else 150)
    try:
        return asyncio.run(_run(args, console))
    except (RequestFailedError, ValueError, OSError) as exc:
        console.print(f"[red]bench: {exc}[/red]")
        return EXIT_USAGE
    except KeyboardInterrupt:
        console.print("[red]bench: interrupted[/red]")
        return EXIT_INTERRUPTED


async def _run(args: argparse.Namespace, console: Console) -> int:
    options = RequestOptions(
        endpoint=args.endpoint,
        max_tokens=args.max_tokens,
        temperature=args.temperature,
        include_usage=not args.no_usage,
        timeout=args.timeout,
    )
    prompts = _prompts(args)
    levels: list[int] = getattr(args, "concurrency", [1])
    api_key = args.api_key or os.environ.get("OPENAI_API_KEY")
    async with BenchClient(args.base_url, api_key=api_key, options=options, max_connections=max(levels) + 2) as client:
        client.model = args.model or await _default_model(client)
        console.print(f"bench {args.bench_command}: {client.url()} model={client.model}")
        if args.bench_command == "compare":
            return await _compare(args, client, prompts[0], console)
        return await _load(args, client, prompts, console)


def _prompts(args: argparse.Namespace) -> list[Prompt]:
    if args.bench_command == "compare":
        return [user_prompt("compare", args.prompt)]
    if args.prompts is not None:
        return load_prompts(args.prompts)
    return builtin_prompts()


async def _default_model(client: BenchClient) -> str:
    models = await client.list_models()
    if not models:
        raise RequestFailedError(f"{client.base_url}/models lists no model; pass --model")
    return models[0]


async def _compare(args: argparse.Namespace, client: BenchClient, prompt: Prompt, console: Console) -> int:
    result = await run_compare(client, prompt, runs=args.runs, warmup=args.warmup, duration=args.duration)
    console.print(report.compare_table(result))
    for line in report.compare_notes(result):
        console.print(line, highlight=False)
    if not args.no_plot and result.pairs:
        from . import plots  # matplotlib is imported only when a plot is drawn

        plots.plot_compare(result, args.plot)
        console.print(f"plot: {args.plot}")
    if args.json_out is not None:
        report.write_json(args.json_out, result.to_dict())
        console.print(f"raw timings: {args.json_out}")
    return EXIT_OK if result.summary.pairs else EXIT_ALL_FAILED  # no run with both halves: failed


async def _load(args: argparse.Namespace, client: BenchClient, prompts: list[Prompt], console: Console) -> int:
    with report.RichProgress(Console(stderr=True)) as progress:
        result = await run_sweep(
            client,
            prompts,
            levels=args.concurrency,
            requests=args.requests,
            duration=args.duration,
            warmup=args.warmup,
            progress=progress,
        )
    console.print(report.load_table([level.summary for level in result.levels]))
    for line in report.load_notes(result):
        console.print(line, highlight=False)
    if args.plot is not None:
        from . import plots  # matplotlib is imported only when a plot is drawn

        plots.plot_load(result, args.plot)
        console.print(f"plot: {args.plot}")
    if args.json_out is not None:
        report.write_json(args.json_out, result.to_dict())
        console.print(f"raw timings: {args.json_out}")
    ok = any(level.summary.completed for level in result.levels)
    return EXIT_OK if ok else EXIT_ALL_FAILED
