"""The PNG plots, drawn with matplotlib's Agg canvas (no pyplot, no display, no global state)."""

from __future__ import annotations

from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .compare import CompareResult
from .load import LoadResult
from .record import RequestRecord

STREAM_COLOR = "tab:blue"
PLAIN_COLOR = "tab:orange"


def save_png(figure: Figure, path: Path) -> None:
    """Draw ``figure`` on an Agg canvas and write it to ``path`` as a PNG, making its directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(figure)
    figure.savefig(path, dpi=120)


def cumulative_tokens(record: RequestRecord) -> tuple[list[float], list[float]]:
    """Arrival time of each content chunk and the output tokens received by then.

    One chunk counts as one token; when the server's usage gives a different total, each chunk is
    weighted ``usage / chunks`` so the curve ends at the true token count.
    """
    chunks = len(record.chunk_times)
    if chunks == 0:
        return [], []
    weight = record.output_tokens / chunks if record.token_source == "usage" else 1.0
    xs = [0.0, *record.chunk_times]
    ys = [0.0, *(weight * (i + 1) for i in range(chunks))]
    if record.e2e is not None and record.e2e > xs[-1]:
        xs.append(record.e2e)
        ys.append(ys[-1])
    return xs, ys


def plot_compare(result: CompareResult, path: Path) -> None:
    """Cumulative output tokens against seconds: each streamed run against each non-streamed one."""
    figure = Figure(figsize=(8, 5))
    ax: Axes = figure.add_subplot()
    summary = result.summary
    for index, (plain, streamed) in enumerate(result.pairs):
        first = index == 0
        if streamed.ok:
            xs, ys = cumulative_tokens(streamed)
            label = "streamed (each chunk as it arrives)" if first else None
            ax.step(xs, ys, where="post", color=STREAM_COLOR, alpha=0.7, label=label)
        if plain.ok and plain.e2e is not None:
            total = plain.output_tokens or streamed.output_tokens
            label = "not streamed (everything at the end)" if first else None
            ax.step(
                [0.0, plain.e2e, plain.e2e],
                [0, total, total],
                where="post",
                color=PLAIN_COLOR,
                alpha=0.7,
                label=label,
            )
    if summary.stream_ttft is not None:
        ax.axvline(
            summary.stream_ttft,
            color=STREAM_COLOR,
            linestyle=":",
            linewidth=1,
            label=f"median first token: {summary.stream_ttft:.3f} s",
        )
    if summary.non_stream_e2e is not None:
        ax.axvline(
            summary.non_stream_e2e,
            color=PLAIN_COLOR,
            linestyle=":",
            linewidth=1,
            label=f"median complete, not streamed: {summary.non_stream_e2e:.3f} s",
        )
    ax.set_xlabel("seconds after the request was sent")
    ax.set_ylabel(f"output tokens received (from {summary.token_source})")
    prompt = result.prompt.text()
    prompt = prompt if len(prompt) <= 60 else prompt[:57] + "..."
    ax.set_title(f"{result.model}, {len(result.pairs)} runs: {prompt!r}", fontsize="medium")
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize="small")
    figure.tight_layout()
    save_png(figure, path)


def plot_load(result: LoadResult, path: Path) -> None:
    """Output tokens/s and TTFT percentiles against concurrency, side by side."""
    summaries = [level.summary for level in result.levels]
    levels = [s.concurrency for s in summaries]
    figure = Figure(figsize=(11, 4.5))
    left: Axes = figure.add_subplot(1, 2, 1)
    right: Axes = figure.add_subplot(1, 2, 2)
    left.plot(levels, [s.output_tokens_per_s for s in summaries], marker="o", label="output tokens/s")
    left.set_ylabel("output tokens/s")
    left.set_title("throughput")
    for name, attr in (("p50", "ttft_p50"), ("p90", "ttft_p90"), ("p99", "ttft_p99")):
        values = [getattr(s, attr) for s in summaries]
        points = [(c, v * 1000) for c, v in zip(levels, values, strict=True) if v is not None]
        right.plot([c for c, _ in points], [v for _, v in points], marker="o", label=f"TTFT {name}")
    right.set_ylabel("time to first token (ms)")
    right.set_title("time to first token")
    for ax in (left, right):
        ax.set_xlabel("concurrent requests")
        if len(levels) > 1 and max(levels) / max(1, min(levels)) >= 4:
            ax.set_xscale("log", base=2)
        ax.set_xticks(levels, [str(c) for c in levels])
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    figure.suptitle(f"{result.model}: load sweep, max_tokens={result.max_tokens}")
    figure.tight_layout()
    save_png(figure, path)
