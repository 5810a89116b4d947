"""``streamserve bench``: a pure HTTP benchmark client for any OpenAI-compatible server.

It imports nothing from the rest of streamserve: only the standard library, httpx, rich, matplotlib
and orjson.
"""

from .cli import add_bench_parser, main, run_bench
from .client import BenchClient, RequestOptions, RequestRecord
from .compare import CompareResult, run_compare
from .load import LevelResult, LoadResult, run_level, run_sweep
from .metrics import CompareSummary, LevelSummary, percentile, summarize, summarize_compare
from .prompts import Prompt, builtin_prompts, load_prompts
from .sse import SSEReader, StreamError

__all__ = [
    "BenchClient",
    "CompareResult",
    "CompareSummary",
    "LevelResult",
    "LevelSummary",
    "LoadResult",
    "Prompt",
    "RequestOptions",
    "RequestRecord",
    "SSEReader",
    "StreamError",
    "add_bench_parser",
    "builtin_prompts",
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
