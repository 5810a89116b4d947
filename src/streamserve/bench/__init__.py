"""``streamserve bench``: a pure HTTP benchmark client for any OpenAI-compatible server.

It imports nothing from the rest of streamserve: only the standard library, httpx, rich, matplotlib
and orjson. Besides ``compare`` and ``load`` it holds the soak benchmark's parts: a strict checker of
streamed responses (``wire``, ``logprobs``, ``accounting``) and the soak run (``soak*``, ``verdict``,
``rss``), driven by ``benchmarks/soak.py``.
"""

from .accounting import Accounting, account
from .cli import add_bench_parser, main, run_bench
from .client import BenchClient
from .compare import CompareResult, run_compare
from .load import LevelResult, LoadResult, run_level, run_sweep
from .metrics import CompareSummary, LevelSummary, percentile, summarize, summarize_compare
from .prompts import Prompt, builtin_prompts, load_prompts
from .record import ReadPlan, RequestOptions, RequestRecord
from .sse import SSEReader, StreamError
from .wire import StreamCheck, StreamSpec, Violation, check_stream

__all__ = [
    "Accounting",
    "BenchClient",
    "CompareResult",
    "CompareSummary",
    "LevelResult",
    "LevelSummary",
    "LoadResult",
    "Prompt",
    "ReadPlan",
    "RequestOptions",
    "RequestRecord",
    "SSEReader",
    "StreamCheck",
    "StreamError",
    "StreamSpec",
    "Violation",
    "account",
    "add_bench_parser",
    "builtin_prompts",
    "check_stream",
    "load_prompts",
    "main",
    "percentile",
    "run_bench",
    "run_compare",
    "run_level",
    "run_sweep",
    "summarize",
    "summarize_compare",
]
