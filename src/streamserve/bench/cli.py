"""The ``streamserve bench`` command line: ``bench compare`` and ``bench load``.

The main CLI registers them with ``add_bench_parser(subparsers)`` and runs them with
``run_bench(args)``; ``python -m streamserve.bench`` offers the same subcommands on their own. This
module only parses: the runs (``commands``) print with rich, which the ``bench`` extra installs, and
are imported only once it is known to be there.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .extra import EXIT_MISSING, missing_extra
from .prompts import COUNT_PROMPT

DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1"


def add_bench_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``bench`` (with ``compare`` and ``load``) on the main CLI's subparsers.

    The parsed namespace gets ``func=run_bench``; the subcommand is in ``args.bench_command``.
    """
    parser = subparsers.add_parser(
        "bench",
        help="measure any OpenAI-compatible server: streaming vs not, and a concurrency sweep",
        description="Benchmark an OpenAI-compatible server (streamserve or any other).",
    )
    add_bench_commands(parser)
    parser.set_defaults(func=run_bench)


def add_bench_commands(parser: argparse.ArgumentParser) -> None:
    """Add the ``compare`` and ``load`` subcommands to ``parser``."""
    commands = parser.add_subparsers(dest="bench_command", required=True, metavar="{compare,load}")
    compare = commands.add_parser(
        "compare",
        help="the same prompt without and with streaming: time to the answer vs time to the first token",
        description="Send one prompt non-streamed and streamed, --runs times; print medians, plot chunks.",
    )
    _add_common(compare, max_tokens=300)
    compare.add_argument("--prompt", default=COUNT_PROMPT, help="the user message (default: count to 100)")
    compare.add_argument("--runs", type=_positive_int, default=3, help="kept runs (default 3)")
    compare.add_argument(
        "--duration",
        type=_positive_float,
        default=600.0,
        help="start no new run after this many seconds (default 600)",
    )
    compare.add_argument(
        "--plot",
        type=Path,
        default=Path("bench-compare.png"),
        help="PNG of chunk arrival times (default bench-compare.png)",
    )
    compare.add_argument("--no-plot", action="store_true", help="write no PNG")

    load = commands.add_parser(
        "load",
        help="a concurrency sweep of streamed requests: TTFT, ITL, TPOT, throughput",
        description="Send --requests streamed requests at each --concurrency level; print percentiles.",
    )
    _add_common(load, max_tokens=128)
    load.add_argument("--concurrency", type=_levels, default=[1, 4, 16], help="comma-separated levels (default 1,4,16)")
    load.add_argument("--requests", type=_positive_int, default=16, help="requests per level (default 16)")
    load.add_argument(
        "--prompts",
        type=Path,
        default=None,
        help="JSONL file of chat requests (default: a built-in mixed set)",
    )
    load.add_argument(
        "--duration",
        type=_positive_float,
        default=300.0,
        help="per level, start no new request after this many seconds (default 300)",
    )
    load.add_argument("--plot", type=Path, default=None, help="PNG of throughput and TTFT vs concurrency")


def _add_common(parser: argparse.ArgumentParser, *, max_tokens: int) -> None:
    parser.add_argument(
        "--base-url",
        default=DEFAULT_BASE_URL,
        help=f"OpenAI base URL, ending in /v1 (default {DEFAULT_BASE_URL})",
    )
    parser.add_argument("--api-key", default=None, help="API key (default: $OPENAI_API_KEY)")
    parser.add_argument("--model", default=None, help="model name (default: the first of /v1/models)")
    parser.add_argument(
        "--endpoint",
        choices=["chat", "completions", "responses"],
        default="chat",
        help="/chat/completions (default), legacy /completions or /responses",
    )
    parser.add_argument(
        "--max-tokens",
        type=_positive_int,
        default=max_tokens,
        help=f"max_tokens of every request (default {max_tokens})",
    )
    parser.add_argument("--temperature", type=float, default=0.0, help="temperature (default 0)")
    parser.add_argument(
        "--timeout",
        type=_positive_float,
        default=120.0,
        help="seconds one request may take, in all (default 120)",
    )
    parser.add_argument(
        "--no-usage",
        action="store_true",
        help="do not send stream_options.include_usage; count tokens from chunks",
    )
    parser.add_argument(
        "--warmup",
        type=_non_negative_int,
        default=1,
        help="discarded warm-up requests before measuring (default 1)",
    )
    parser.add_argument("--json-out", type=Path, default=None, help="write every request's raw timings here")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
    return value


def _levels(text: str) -> list[int]:
    try:
        levels = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers: {text!r}") from exc
    if not levels or min(levels) < 1:
        raise argparse.ArgumentTypeError(f"expected one or more levels, each at least 1: {text!r}")
    return levels


def run_bench(args: argparse.Namespace) -> int:
    """Run the parsed ``bench`` subcommand; return the exit status (0 ok, 1 all failed, 2 usage or no extra).

    Without the ``bench`` extra it prints one line naming it and returns 2.
    """
    problem = missing_extra()
    if problem is not None:
        print(problem, file=sys.stderr)
        return EXIT_MISSING
    from .commands import run  # imports rich, from the bench extra

    return run(args)


def build_parser() -> argparse.ArgumentParser:
    """The stand-alone parser of ``python -m streamserve.bench``."""
    parser = argparse.ArgumentParser(
        prog="python -m streamserve.bench",
        description="Benchmark an OpenAI-compatible server (streamserve or any other).",
    )
    add_bench_commands(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the bench subcommand it names; without the ``bench`` extra, say so and return 2."""
    problem = missing_extra()
    if problem is not None:
        print(problem, file=sys.stderr)
        return EXIT_MISSING
    return run_bench(build_parser().parse_args(argv))
