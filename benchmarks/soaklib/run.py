"""The soak run: thousands of randomised streams at concurrency 1 to 32, every one checked on the wire.

``run_soak`` sends the planned requests in phases, each a closed loop of ``level`` clients;
checks every stream as it ends (``verdict``); samples the server's RSS throughout; waits for the
engine to be idle with every lane free (through ``/metrics``); then replays a sample of the
complete greedy requests one at a time and compares their text with what the load run gave.
Every loop is bounded: the plan's count, the load's ``duration``, the replays' ``replay_duration``,
each request's timeout, and a deadline on every wait.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

from streamserve.bench.client import BenchClient
from streamserve.bench.prometheus import parse_metrics
from streamserve.bench.record import ReadPlan

from .accounting import first_difference
from .memory import RssSampler
from .plan import PlannedRequest, phases
from .verdict import Outcome, evaluate

DEFAULT_LEVELS = (1, 4, 16, 32, 8, 2, 24, 12, 32, 6)
_IDLE_NAMES = {"running": "streamserve:num_requests_running", "waiting": "streamserve:num_requests_waiting",
               "lanes_free": "streamserve:lanes_free", "lanes": "streamserve:lanes"}
_ABORTED = 'streamserve:aborted_sequences_total{phase="%s"}'
_SNIPPET = 24


@dataclass(frozen=True)
class SoakConfig:
    """The run's sizes, rates and time budgets. ``lanes`` is the server's ``--max-num-seqs``, to estimate queueing.

    ``duration`` bounds the load (no request starts after it); ``replay_duration`` bounds the replays,
    counted from when they start, so a load that runs to its cap still leaves the replays their time.
    """

    requests: int = 5000
    seed: int = 0
    levels: tuple[int, ...] = DEFAULT_LEVELS
    per_level: int = 10
    minimum: int = 20
    hangup_rate: float = 0.10
    slow_rate: float = 0.02
    replay: int = 100
    duration: float = 7200.0
    timeout: float = 300.0
    replay_duration: float = 900.0
    warmup_fraction: float = 0.1
    rss_interval: float = 1.0
    idle_deadline: float = 30.0
    lanes: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


@dataclass
class Replay:
    """One request sent again alone, and whether each choice's text came out the same."""

    number: int
    endpoint: str
    prompt: str
    n: int
    status: str
    matched: bool
    violations: list[list[str]] = field(default_factory=list)
    mismatch: dict[str, Any] | None = None


@dataclass
class SoakRun:
    """Everything a run produced; ``summary.summarize`` turns it into the JSON record."""

    config: SoakConfig
    outcomes: list[Outcome] = field(default_factory=list)
    replays: list[Replay] = field(default_factory=list)
    phases: list[dict[str, Any]] = field(default_factory=list)
    metrics_before: dict[str, float] | None = None
    idle_after_load: dict[str, Any] | None = None
    idle_at_end: dict[str, Any] | None = None
    rss: RssSampler | None = None
    duration: float = 0.0


async def run_soak(client: BenchClient, plan: Sequence[PlannedRequest], config: SoakConfig, *,
                   metrics_url: str | None, pid: int | None,
                   log: Callable[[str], None] = lambda _: None) -> SoakRun:
    """Run the load phases, the idle check and the replay; return what happened."""
    run = SoakRun(config)
    t0 = time.perf_counter()
    deadline = t0 + config.duration
    async with httpx.AsyncClient(timeout=10.0) as http:
        run.metrics_before = await scrape(http, metrics_url)
        sampler = RssSampler(pid, config.rss_interval, lambda: len(run.outcomes)) if pid else None
        run.rss = sampler
        if sampler is not None:
            async with sampler.running():
                await _load(client, run, plan, t0, deadline, log)
        else:
            await _load(client, run, plan, t0, deadline, log)
        run.idle_after_load = await wait_idle(http, metrics_url, config.idle_deadline)
        log(f"load done: {len(run.outcomes)} requests in {time.perf_counter() - t0:.0f} s; "
            f"engine idle: {run.idle_after_load}")
        by_number = {p.number: p for p in plan}
        await _replay(client, run, by_number, time.perf_counter() + config.replay_duration, log)
        run.idle_at_end = await wait_idle(http, metrics_url, config.idle_deadline)
    run.duration = time.perf_counter() - t0
    return run


async def _load(client: BenchClient, run: SoakRun, plan: Sequence[PlannedRequest], t0: float, deadline: float,
                log: Callable[[str], None]) -> None:
    config = run.config
    pending = iter(plan)
    for level, size in phases(len(plan), config.levels, per_level=config.per_level, minimum=config.minimum):
        if time.perf_counter() >= deadline:
            log("duration reached: no further phase starts")
            break
        batch = list(itertools.islice(pending, size))
        if not batch:
            break
        start = time.perf_counter() - t0
        await _phase(client, run, batch, level, t0, deadline)
        end = time.perf_counter() - t0
        run.phases.append({"level": level, "requests": len(batch), "start": round(start, 3), "end": round(end, 3)})
        log(f"phase concurrency={level}: {len(batch)} requests in {end - start:.1f} s "
            f"({len(run.outcomes)} done)")


async def _phase(client: BenchClient, run: SoakRun, batch: list[PlannedRequest], level: int, t0: float,
                 deadline: float) -> None:
    shared = iter(batch)

    async def worker() -> None:
        for planned in shared:  # each request is taken by one worker
            if time.perf_counter() >= deadline:
                return
            record = await client.send_body(planned.endpoint, planned.body, name=planned.prompt,
                                            plan=planned.read, epoch=t0)
            run.outcomes.append(evaluate(planned, record, level=level))

    await asyncio.gather(*(worker() for _ in range(min(level, len(batch)))))


async def _replay(client: BenchClient, run: SoakRun, by_number: dict[int, PlannedRequest], deadline: float,
                  log: Callable[[str], None]) -> None:
    eligible = [o for o in run.outcomes if o.status == "complete" and o.texts is not None]
    rng = random.Random(run.config.seed + 1)
    sample = sorted(rng.sample(eligible, min(run.config.replay, len(eligible))), key=lambda o: o.number)
    log(f"replaying {len(sample)} of {len(eligible)} complete greedy requests, one at a time")
    for original in sample:
        if time.perf_counter() >= deadline:
            break
        planned = by_number[original.number]
        record = await client.send_body(planned.endpoint, planned.body, name=planned.prompt,
                                        plan=ReadPlan(keep_events=True))
        again = evaluate(planned, record, level=1)
        run.replays.append(compare(original, again))


def compare(original: Outcome, again: Outcome) -> Replay:
    """Whether a replay gave each choice the same text; where they first differ if not."""
    replay = Replay(original.number, original.endpoint, original.prompt, original.n, again.status,
                    matched=False, violations=[[v.rule, v.detail] for v in again.violations])
    if again.texts is None or original.texts is None:
        return replay
    for index, (first, second) in enumerate(zip(original.texts, again.texts, strict=True)):
        if first != second:
            at = first_difference(first, second)
            replay.mismatch = {
                "choice": index, "at_char": at, "load_chars": len(first), "replay_chars": len(second),
                "load": first[max(0, at - _SNIPPET): at + _SNIPPET],
                "replay": second[max(0, at - _SNIPPET): at + _SNIPPET],
                "load_finish": _at(original.finish, index), "replay_finish": _at(again.finish, index),
                "load_cached_tokens": original.cached_tokens, "replay_cached_tokens": again.cached_tokens,
            }
            return replay
    replay.matched = True
    return replay


def _at(values: list[str | None], index: int) -> str | None:
    return values[index] if index < len(values) else None


async def scrape(http: httpx.AsyncClient, url: str | None) -> dict[str, float] | None:
    """The server's ``/metrics`` samples, or None if there is no such page."""
    if url is None:
        return None
    try:
        response = await http.get(url)
    except httpx.HTTPError:
        return None
    return parse_metrics(response.text) if response.status_code == 200 else None


def engine_state(metrics: dict[str, float]) -> dict[str, Any]:
    """Running, waiting, free lanes and aborted sequences by phase, from the ``/metrics`` samples."""
    state: dict[str, Any] = {key: metrics.get(name) for key, name in _IDLE_NAMES.items()}
    state["aborted"] = {phase: metrics.get(_ABORTED % phase) for phase in ("waiting", "prefill", "decode")}
    return state


def is_idle(state: dict[str, Any]) -> bool:
    """Nothing running or waiting, and every lane free (where the server reports lanes)."""
    lanes_ok = state["lanes_free"] is None or state["lanes_free"] == state["lanes"]
    return state["running"] == 0 and state["waiting"] == 0 and lanes_ok


async def wait_idle(http: httpx.AsyncClient, url: str | None, deadline_s: float) -> dict[str, Any] | None:
    """Poll ``/metrics`` until the engine is idle or ``deadline_s`` passes; the last state and the wait."""
    start = time.perf_counter()
    state: dict[str, Any] | None = None
    while True:
        metrics = await scrape(http, url)
        if metrics is None:
            return None
        state = engine_state(metrics)
        waited = time.perf_counter() - start
        if is_idle(state) or waited >= deadline_s:
            return {**state, "idle": is_idle(state), "waited_s": round(waited, 3)}
        await asyncio.sleep(0.1)
