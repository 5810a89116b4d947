"""What a person sees: rich tables, the live progress bar, and the JSON file of raw timings."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from .compare import CompareResult
from .load import LoadResult
from .metrics import LevelSummary, inter_token_latencies
from .record import RequestRecord

SOURCE_NOTE = {
    "usage": "from the server's usage (include_usage)",
    "chunks": "counted from content chunks (the server sent no usage)",
    "mixed": "from usage where the server sent it, else counted chunks",
    "none": "not known",
}


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.1f}"


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def compare_table(result: CompareResult) -> Table:
    """The medians of ``bench compare`` (seconds), with min and max over the runs."""
    plain = [p for p, _ in result.pairs if p.ok]
    streamed = [s for _, s in result.pairs if s.ok]
    table = Table(title=f"streamed vs not, {len(result.pairs)} runs (seconds)")
    table.add_column("measure")
    for name in ("median", "min", "max"):
        table.add_column(name, justify="right")
    rows: list[tuple[str, list[float]]] = [
        ("non-streamed: complete answer", [r.e2e for r in plain if r.e2e is not None]),
        ("streamed: first token (TTFT)", [r.ttft for r in streamed if r.ttft is not None]),
        ("streamed: last token", [r.last_token for r in streamed if r.last_token is not None]),
        ("streamed: complete ([DONE])", [r.e2e for r in streamed if r.e2e is not None]),
        ("streamed: gap between chunks", [g for r in streamed for g in inter_token_latencies(r)]),
    ]
    summary = result.summary
    medians = [summary.non_stream_e2e, summary.stream_ttft, summary.stream_last_token, summary.stream_e2e]
    for (label, values), med in zip(rows, [*medians, summary.itl_p50], strict=True):
        table.add_row(label, _s(med), _s(min(values, default=None)), _s(max(values, default=None)))
    return table


def compare_notes(result: CompareResult) -> list[str]:
    """The lines printed under the compare table: tokens and their source, text agreement, speed-up."""
    summary = result.summary
    lines = []
    if summary.output_tokens is not None:
        lines.append(
            f"output tokens (median): {summary.output_tokens:g}, {SOURCE_NOTE[summary.token_source]}; "
            f"content chunks (median): {summary.content_chunks:g}"
        )
    if summary.pairs:
        equal = f"{summary.texts_equal} of {summary.pairs}"
        lines.append(f"streamed text equals non-streamed text in {equal} runs")
    if summary.stream_ttft and summary.non_stream_e2e:
        ratio = summary.non_stream_e2e / summary.stream_ttft
        lines.append(
            f"with streaming the first token arrives after {summary.stream_ttft:.3f} s, "
            f"{ratio:.1f}x sooner than the complete non-streamed answer ({summary.non_stream_e2e:.3f} s)"
        )
    lines.extend(_error_lines([r for pair in result.pairs for r in pair], result.warmup_errors))
    return lines


def load_table(summaries: Sequence[LevelSummary]) -> Table:
    """One row per concurrency level: latency percentiles (ms), throughput and errors."""
    table = Table(title="load sweep (latencies in ms)")
    columns = [
        "concurrency",
        "ok",
        "errors",
        "TTFT p50",
        "TTFT p90",
        "TTFT p99",
        "ITL p50",
        "ITL p99",
        "TPOT p50",
        "E2E p50",
        "out tok/s",
        "req/s",
        "tokens from",
    ]
    for name in columns:
        table.add_column(name, justify="left" if name == "tokens from" else "right")
    for s in summaries:
        table.add_row(
            str(s.concurrency),
            str(s.completed),
            f"{s.errors}" + (f" (+{s.not_sent} not sent)" if s.not_sent else ""),
            _ms(s.ttft_p50),
            _ms(s.ttft_p90),
            _ms(s.ttft_p99),
            _ms(s.itl_p50),
            _ms(s.itl_p99),
            _ms(s.tpot_p50),
            _ms(s.e2e_p50),
            f"{s.output_tokens_per_s:.1f}",
            f"{s.requests_per_s:.2f}",
            s.token_source,
        )
    return table


def load_notes(result: LoadResult) -> list[str]:
    """The lines printed under the load table: the token source and every distinct error."""
    records = [r for level in result.levels for r in level.records]
    sources = {level.summary.token_source for level in result.levels if level.summary.completed}
    lines = [f"tokens: {SOURCE_NOTE[s]}" for s in sorted(sources)]
    lines.extend(_error_lines(records, result.warmup_errors))
    return lines


def _error_lines(records: Sequence[RequestRecord], warmup_errors: int) -> list[str]:
    counts: dict[str, int] = {}
    for record in records:
        if not record.ok:
            key = record.error or "unknown error"
            counts[key] = counts.get(key, 0) + 1
    lines = [f"error x{n}: {message}" for message, n in sorted(counts.items(), key=lambda kv: -kv[1])]
    if warmup_errors:
        lines.append(f"warm-up requests failed: {warmup_errors}")
    return lines


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as indented JSON (creating the parent directory)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n")


class RichProgress:
    """A live progress bar per concurrency level, with a running error count (a ``ProgressSink``)."""

    def __init__(self, console: Console) -> None:
        """Draw on ``console``; use as a context manager around the sweep."""
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[errors]} errors"),
            TimeElapsedColumn(),
            console=console,
        )
        self._task: TaskID | None = None
        self._errors = 0

    def __enter__(self) -> RichProgress:
        """Start drawing."""
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop drawing."""
        self._progress.stop()

    def start_level(self, concurrency: int, total: int) -> None:
        """Add a bar for the new level."""
        self._errors = 0
        self._task = self._progress.add_task(f"concurrency {concurrency}", total=total, errors=0)

    def request_done(self, record: RequestRecord) -> None:
        """Advance the bar; count an error."""
        if self._task is None:
            return
        self._errors += not record.ok
        self._progress.update(self._task, advance=1, errors=self._errors)

    def end_level(self, summary: LevelSummary) -> None:
        """Fill the bar (requests not sent before the deadline count as done)."""
        if self._task is not None:
            self._progress.update(self._task, completed=summary.requests + summary.not_sent)
