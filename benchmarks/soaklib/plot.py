"""The soak run's PNG: the server's RSS over time above, concurrency and requests done below."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from streamserve.bench.plots import PLAIN_COLOR, STREAM_COLOR, save_png


def plot_soak(record: dict[str, Any], path: Path) -> None:
    """A soak run from its JSON record: server RSS over time above, concurrency and progress below."""
    rss = record["rss"]
    samples = rss["samples"]
    figure = Figure(figsize=(10, 6.5))
    top: Axes = figure.add_subplot(2, 1, 1)
    bottom: Axes = figure.add_subplot(2, 1, 2, sharex=top)
    growth = rss["growth"]
    if samples:
        top.plot([s[0] for s in samples], [s[1] for s in samples], color=STREAM_COLOR, label="server RSS")
        warm = next((s[0] for s in samples if s[2] >= rss["warmup_requests"]), None)
        if warm is not None:
            top.axvline(warm, color="grey", linestyle=":", label=f"warm-up end ({rss['warmup_requests']} requests)")
        if growth["baseline_mb"] is not None:
            top.axhline(growth["baseline_mb"] * (1 + rss["target_pct"] / 100), color="tab:red", linestyle="--",
                        linewidth=1, label=f"baseline +{rss['target_pct']:.0f}% (target)")
            top.set_title(f"RSS growth after warm-up: {growth['growth_pct']:+.1f}% "
                          f"(peak {growth['peak_growth_pct']:+.1f}%)", fontsize="medium")
        top.legend(loc="lower right", fontsize="small")
    top.set_ylabel("RSS (MB)")
    top.grid(alpha=0.3)
    for phase in record["phases"]:
        bottom.hlines(phase["level"], phase["start"], phase["end"], color=PLAIN_COLOR, linewidth=3)
    bottom.set_ylabel("concurrent clients", color=PLAIN_COLOR)
    bottom.set_xlabel("seconds since the run started")
    bottom.grid(alpha=0.3)
    if samples:
        done: Axes = bottom.twinx()
        done.plot([s[0] for s in samples], [s[2] for s in samples], color="tab:green")
        done.set_ylabel("requests done", color="tab:green")
    requests = record["requests"]
    figure.suptitle(f"soak: {requests['sent']} streamed requests, {requests['hung_up']} hung up, "
                    f"{record['errors']['total']} errors, {record['wire']['streams_with_violations']} rule breaks")
    figure.tight_layout()
    save_png(figure, path)
