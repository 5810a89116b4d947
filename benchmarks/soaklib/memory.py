"""The server's resident memory over a soak run, sampled at a fixed interval, and its growth.

The sampler runs as one asyncio task at a fixed interval until stopped, so it is bounded by the
run it watches. Growth is measured after a warm-up, when the model is paged in, the prompt cache
is full and the allocators have reached their working size: the median of the first samples
after warm-up against the median of the last ones (medians, so one sample taken during a large
transient allocation does not decide the figure).
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from streamserve.bench.rss import read_rss

_WINDOW = 10  # samples in the baseline and final medians


@dataclass(frozen=True)
class RssSample:
    """One reading: seconds since the sampler started, RSS in bytes, requests completed by then."""

    t: float
    rss: int
    completed: int


@dataclass
class RssSampler:
    """Samples ``pid``'s RSS every ``interval`` seconds while ``run()`` is active."""

    pid: int
    interval: float = 1.0
    progress: Callable[[], int] = lambda: 0
    samples: list[RssSample] = field(default_factory=list)
    epoch: float = field(default_factory=time.perf_counter)

    def sample(self) -> None:
        """Take one reading now (nothing if the process cannot be read)."""
        rss = read_rss(self.pid)
        if rss is not None:
            self.samples.append(RssSample(time.perf_counter() - self.epoch, rss, self.progress()))

    async def run(self) -> None:
        """Sample until cancelled."""
        while True:
            self.sample()
            await asyncio.sleep(self.interval)

    @contextlib.asynccontextmanager
    async def running(self) -> Any:
        """Sample in the background for the duration of the block, and once more at its end."""
        task = asyncio.create_task(self.run())
        try:
            yield self
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            self.sample()


@dataclass(frozen=True)
class RssGrowth:
    """RSS after warm-up: baseline and final medians, the peak, and growth in percent of the baseline."""

    samples_after_warmup: int
    baseline_mb: float | None
    final_mb: float | None
    peak_mb: float | None
    growth_pct: float | None
    peak_growth_pct: float | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def rss_growth(samples: Sequence[RssSample], warmup_completed: int, window: int = _WINDOW) -> RssGrowth:
    """Growth of RSS over the samples taken once ``warmup_completed`` requests had completed."""
    after = [s for s in samples if s.completed >= warmup_completed]
    if len(after) < 2:
        return RssGrowth(len(after), None, None, None, None, None)
    size = max(1, min(window, len(after) // 3))
    baseline = statistics.median(s.rss for s in after[:size])
    final = statistics.median(s.rss for s in after[-size:])
    peak = max(s.rss for s in after)
    mb = 1024 * 1024
    return RssGrowth(
        samples_after_warmup=len(after),
        baseline_mb=baseline / mb,
        final_mb=final / mb,
        peak_mb=peak / mb,
        growth_pct=100 * (final / baseline - 1),
        peak_growth_pct=100 * (peak / baseline - 1),
    )
