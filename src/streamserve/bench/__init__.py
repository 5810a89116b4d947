"""``streamserve bench``: a pure HTTP benchmark client for any OpenAI-compatible server.

It imports nothing from the rest of streamserve: only the standard library, httpx and orjson, and
for the command's tables and plots rich and matplotlib, which the ``bench`` extra installs
(``pip install 'streamserve[bench]'``) and only ``commands``, ``report`` and ``plots`` import, so the
server never loads them. Besides ``compare`` and ``load`` it holds the helpers the benchmarks and the
reliability tests share (``hostile``, ``rss``, ``prometheus``); the soak benchmark's own parts live in
``benchmarks/soaklib``.

The names below are imported on first use: the ``streamserve`` command line imports this package
to register ``bench``, and ``streamserve serve`` must not load httpx with it, since httpx imports
rich when it can (for its own command line).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .cli import add_bench_parser, main, run_bench
    from .client import BenchClient
    from .compare import CompareResult, run_compare
    from .load import LevelResult, LoadResult, run_level, run_sweep
    from .metrics import CompareSummary, LevelSummary, percentile, summarize, summarize_compare
    from .prompts import Prompt, builtin_prompts, load_prompts
    from .record import ReadPlan, RequestOptions, RequestRecord
    from .sse import SSEReader, StreamError

_EXPORTS = {
    "add_bench_parser": "cli",
    "main": "cli",
    "run_bench": "cli",
    "BenchClient": "client",
    "CompareResult": "compare",
    "run_compare": "compare",
    "LevelResult": "load",
    "LoadResult": "load",
    "run_level": "load",
    "run_sweep": "load",
    "CompareSummary": "metrics",
    "LevelSummary": "metrics",
    "percentile": "metrics",
    "summarize": "metrics",
    "summarize_compare": "metrics",
    "Prompt": "prompts",
    "builtin_prompts": "prompts",
    "load_prompts": "prompts",
    "ReadPlan": "record",
    "RequestOptions": "record",
    "RequestRecord": "record",
    "SSEReader": "sse",
    "StreamError": "sse",
}

__all__ = [
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


def __getattr__(name: str) -> Any:
    """``name`` from the module that defines it, imported now (PEP 562: only names not yet set get here)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
