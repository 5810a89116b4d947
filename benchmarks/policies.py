"""The scheduling and lane policies compared on scripted workloads: no model, deterministic, a few seconds.

Prefill: the engine's real ``Scheduler`` and ``PrefillBudget`` run against a step-cost model close to
SmolLM2 on this 2-core machine (6 ms per step, 1.5 ms per decode token, prompt tokens 1.5 ms rising to
3 ms at position 4,000 as attention grows). Long 4,000-token prompts arrive at t = 0 and t = 5 s while
a 30-token chat arrives every 0.5 s; each policy decides which prompt tokens go into each step:

- ``fifo, batch-bounded``: arrival order, and a whole 512-token batch when no stream decodes (before issue 13);
- ``fifo, time-bounded``: arrival order, steps bounded by ``prefill_step_time``;
- ``max-min fair``: an equal share for each prefilling prompt (round-robin), time-bounded;
- ``shortest first + floor``: ``scheduler.prompt_shares``, time-bounded (what the engine does), with
  ``prefill_step_time`` 0.5 s (the default), 0.25 s and 1 s.

Admission: 8 lanes under the mixed load of ``scenarios.mixed_load`` (4 streams that keep asking for
64 tokens, two 3,500-token prompts at t = 1 and 8 s, a 35-token chat every second, 4 conversations
of 3 turns over one system prompt), with a step cost fitted to its run on this machine (6 ms per
step, 3.5 ms per decode token, 4.5 ms per prompt token rising to 9 ms at position 4,000: the long
prompts' first tokens at 57 and 74 s, as measured). Who takes a lane that frees: arrival order with
both long prompts holding a lane (before), arrival order with one long read at a time, the second
long prompt waiting without a lane (``Scheduler.admit``, what the engine does), or ``SmallestJobFirst``
(uncached prompt plus ``max_tokens``, smallest first; a sequence waiting ``aging`` seconds goes
before younger ones).

Lanes: 8 lanes, N conversations over one system prompt take 4 turns each in random order, 4 at a
time, with one-shot ~2,000-token prompts mixed in (15% of requests). Cached tokens over prompt
tokens for the conversations' turns, for the old score (2 x shared - held), least-loss eviction,
and ``LanePool`` (no-cost lane first, else LRU).

    python benchmarks/policies.py
"""

from __future__ import annotations

import heapq
import itertools
import random
import statistics
from collections import deque
from collections.abc import Callable
from typing import Any

import streamserve.engine.scheduler as scheduler_module
from streamserve.bench import percentile
from streamserve.engine.budget import PrefillBudget
from streamserve.engine.config import EngineConfig
from streamserve.engine.lanes import COPY_MIN_TOKENS, LanePool, Lease, common_prefix_len, grid_extent
from streamserve.engine.prefill import prompt_shares
from streamserve.engine.sampling import SamplingParams
from streamserve.engine.scheduler import Scheduler
from streamserve.engine.sequence import Sequence
from streamserve.engine.work import Work

Shares = Callable[[list[Sequence], int], list[tuple[Sequence, int]]]
_DUMMY: Any = object()
_ENGINE = EngineConfig()
GRID, LONG_PREFILL, MAX_LONG_PREFILLS = (_ENGINE.prompt_grid, _ENGINE.long_prefill_token_threshold,
                                         _ENGINE.max_long_partial_prefills)


def fifo(prefilling: list[Sequence], budget: int) -> list[tuple[Sequence, int]]:
    """Arrival order: the earliest prompt takes the whole budget."""
    out = []
    for seq in prefilling:
        take = min(len(seq.prompt_ids) - seq.num_computed - seq.prompt_credit, budget)
        if take > 0:
            out.append((seq, take))
            budget -= take
    return out


def max_min(prefilling: list[Sequence], budget: int) -> list[tuple[Sequence, int]]:
    """Water-filling: an equal share each, what a short prompt does not need goes to the others."""
    shares: dict[int, int] = {}
    ordered = sorted(prefilling, key=lambda s: len(s.prompt_ids) - s.num_computed - s.prompt_credit)
    for i, seq in enumerate(ordered):
        take = min(len(seq.prompt_ids) - seq.num_computed - seq.prompt_credit, budget // (len(ordered) - i))
        shares[id(seq)] = take
        budget -= take
    return [(s, shares[id(s)]) for s in prefilling if shares[id(s)] > 0]


def step_cost(fixed: float, per_decode: float, per_prompt: float) -> Callable[[list[Work]], float]:
    """A step-cost model: ``fixed`` a step, ``per_decode`` a decode token, ``per_prompt`` a prompt token
    at position 0, rising linearly to twice that at position 4,000 as attention grows."""

    def seconds(works: list[Work]) -> float:
        total = fixed
        for work in works:
            if work.kind == "decode":
                total += per_decode
            else:
                total += sum(per_prompt * (1 + (work.start + i) / 4000) for i in range(len(work.tokens)))
        return total

    return seconds


step_seconds = step_cost(0.006, 0.0015, 0.0015)  # the prefill comparison's model
mixed_step_seconds = step_cost(0.006, 0.0035, 0.0045)  # fitted to the mixed-load run (module docstring)


def run_step(sched: Scheduler, budget: PrefillBudget,
             cost: Callable[[list[Work]], float]) -> tuple[list[Work], float] | None:
    """One engine step without a model: admit, schedule within the budget, charge ``cost``, count the tokens read.

    None when nothing runs (the caller moves the clock to the next arrival).
    """
    sched.admit()
    if not sched.running:
        return None
    n_decoding = sched.num_decoding()
    works = sched.schedule(budget.tokens(n_decoding))
    seconds = cost(works)
    budget.observe(n_decoding, sum(len(c.tokens) for c in works) - n_decoding, seconds)
    for work in works:
        work.seq.num_computed += len(work.tokens)
    return works, seconds


def simulate_prefill(shares: Shares, step_time: float) -> dict[str, Any]:
    """Run the workload through the real Scheduler and PrefillBudget; TTFTs in simulated seconds."""
    scheduler_module.prompt_shares = shares
    sched = Scheduler(LanePool(8, GRID), max_num_batched_tokens=512, grid=GRID)
    budget = PrefillBudget(2.0, step_time=step_time, ceiling=512)
    budget.observe(1, 0, 0.0075)  # the engine's warm-up decode
    rng = random.Random(1)
    arrivals = [(0.0, 4000, 4), (5.0, 4000, 4)] + [(0.5 + 0.5 * i, 30, 16) for i in range(40)]
    arrivals.sort()
    now, firsts, starts, limits = 0.0, {}, {}, {}
    while arrivals or sched.running or sched.waiting:
        while arrivals and arrivals[0][0] <= now:
            t, length, max_tokens = arrivals.pop(0)
            seq = Sequence([rng.randrange(1, 30000) for _ in range(length)], SamplingParams(max_tokens=max_tokens),
                           _DUMMY, _DUMMY)
            starts[seq.number], limits[seq.number] = (t, length), max_tokens
            sched.add(seq)
        step = run_step(sched, budget, step_seconds)
        if step is None:
            now = arrivals[0][0]
            continue
        works, seconds = step
        now += seconds
        for work in works:
            seq = work.seq
            if work.sample:
                seq.output_ids.append(7)
                firsts.setdefault(seq.number, now - starts[seq.number][0])
                if len(seq.output_ids) >= limits[seq.number]:
                    sched.remove(seq)
                    sched.lanes.release(seq.lane, [])
    scheduler_module.prompt_shares = prompt_shares
    short = [ttft for key, ttft in firsts.items() if starts[key][1] == 30]
    long = [round(ttft, 1) for key, ttft in firsts.items() if starts[key][1] == 4000]
    return {"short_ttft_p50": percentile(short, 50), "short_ttft_p99": percentile(short, 99), "long_ttft": long,
            "total": now}


class SmallestJobFirst(Scheduler):
    """Admission by job size (uncached prompt plus ``max_tokens``), with aging: the policy compared with FIFO."""

    def __init__(self, lanes: LanePool, *, aging: float, clock: Callable[[], float]) -> None:
        super().__init__(lanes, max_num_batched_tokens=512, grid=GRID)
        self.aging, self.clock = aging, clock

    def admit(self) -> list[Sequence]:
        """Reorder the queue, smallest job first (aged sequences first of all), then admit as the engine does."""
        now = self.clock()

        def key(seq: Sequence) -> tuple[int, int, int]:
            if now - seq.arrival_time >= self.aging:
                return (0, 0, seq.number)
            return (1, len(seq.prompt_ids) - self.lanes.best_reuse(seq.prompt_ids) + seq.params.max_tokens,
                    seq.number)

        self.waiting = deque(sorted(self.waiting, key=key))
        return super().admit()


def simulate_admission(aging: float | None, max_long_prefills: int = 0) -> dict[str, Any]:
    """Run ``scenarios.mixed_load``'s arrivals through the real Scheduler, PrefillBudget and LanePool.

    ``aging`` None admits in arrival order (the engine's ``Scheduler``, with at most ``max_long_prefills``
    long prompts holding a lane, 0 for any number); a number, ``SmallestJobFirst``.
    """
    rng = random.Random(1)
    now = 0.0
    lanes = LanePool(8, GRID)
    sched = (Scheduler(lanes, max_num_batched_tokens=512, grid=GRID, long_prefill=LONG_PREFILL,
                       max_long_prefills=max_long_prefills)
             if aging is None
             else SmallestJobFirst(lanes, aging=aging, clock=lambda: now))
    budget = PrefillBudget(2.0, step_time=0.5, ceiling=512)
    budget.observe(1, 0, 0.0095)  # the engine's warm-up decode

    def tokens(n: int) -> list[int]:
        return [rng.randrange(1, 30000) for _ in range(n)]

    system, count = tokens(60), tokens(12)
    arrivals: list[tuple[float, int, str, int]] = []  # (time, order of arrival, kind, client)
    order = itertools.count()

    def arrive(t: float, kind: str, client: int) -> None:
        heapq.heappush(arrivals, (t, next(order), kind, client))

    for i in range(2):
        arrive(1.0 + 7.0 * i, "long", i)
    for i in range(16):
        arrive(1.5 + i, "short", i)
    for c in range(4):
        arrive(0.5 + 0.7 * c, "conversation", c)
    for s in range(4):
        arrive(0.0, "stream", s)
    history = {c: list(system) for c in range(4)}
    turns = dict.fromkeys(range(4), 0)
    who: dict[int, tuple[float, str, int]] = {}
    firsts: dict[str, list[float]] = {"short": [], "long": [], "conversation": []}
    open_clients = 2 + 16 + 4
    while open_clients:
        while arrivals and arrivals[0][0] <= now:
            t, _, kind, client = heapq.heappop(arrivals)
            if kind == "long":
                prompt, max_tokens = tokens(3500), 8
            elif kind == "short":
                prompt, max_tokens = tokens(35), 16
            elif kind == "stream":
                prompt, max_tokens = list(count), 64
            else:
                history[client] = history[client] + tokens(15)
                prompt, max_tokens = list(history[client]), 16
            seq = Sequence(prompt, SamplingParams(max_tokens=max_tokens), _DUMMY, _DUMMY)
            seq.arrival_time = t
            who[seq.number] = (t, kind, client)
            sched.add(seq)
        step = run_step(sched, budget, mixed_step_seconds)
        if step is None:
            now = arrivals[0][0]
            continue
        works, seconds = step
        now += seconds
        for work in works:
            seq = work.seq
            if work.kind != "decode":  # as the engine does: what is read so far can be copied
                sched.lanes.hold_prefill(seq.lane, seq.prompt_ids, seq.num_computed)
            if not work.sample:
                continue
            seq.output_ids.append(rng.randrange(1, 30000))
            t, kind, client = who[seq.number]
            if len(seq.output_ids) == 1 and kind in firsts:
                firsts[kind].append(now - t)
            if len(seq.output_ids) < seq.params.max_tokens:
                continue
            sched.remove(seq)
            sched.lanes.release(seq.lane, seq.tokens_in_kv(),
                                min(seq.num_computed, grid_extent(len(seq.prompt_ids), GRID)))
            if kind == "stream":
                arrive(now, "stream", client)
            elif kind == "conversation" and turns[client] < 2:
                turns[client] += 1
                history[client] = history[client] + seq.output_ids
                arrive(now + 1.0, "conversation", client)
            else:
                open_clients -= 1
    return {"short_ttft_p50": percentile(firsts["short"], 50), "short_ttft_p99": percentile(firsts["short"], 99),
            "turn_ttft_p50": percentile(firsts["conversation"], 50),
            "turn_ttft_p99": percentile(firsts["conversation"], 99),
            "chat_ttft_mean": statistics.mean(firsts["short"] + firsts["conversation"]),
            "long_ttft": [round(x, 1) for x in firsts["long"]]}


def acquire_old(pool: LanePool, prompt: list[int]) -> Lease:
    """The lane score before issue 13: 2 x shared - held, ties to the least recently released."""
    shared = [min(common_prefix_len(t, prompt), len(prompt) - 1) for t in pool.contents]
    best = max(pool._free, key=lambda lane: (2 * shared[lane] - len(pool.contents[lane]), -pool._free.index(lane)))
    return _lease(pool, prompt, shared, best)


def acquire_least_loss(pool: LanePool, prompt: list[int]) -> Lease:
    """No-cost lane first, else the free lane whose loss discards the fewest tokens."""
    shared = [min(common_prefix_len(t, prompt), len(prompt) - 1) for t in pool.contents]
    best = min(pool._free, key=lambda lane: (len(pool.contents[lane]) - shared[lane] > COPY_MIN_TOKENS,
                                             len(pool.contents[lane]) - shared[lane], -shared[lane]))
    return _lease(pool, prompt, shared, best)


def _lease(pool: LanePool, prompt: list[int], shared: list[int], best: int) -> Lease:
    pool._free.remove(best)
    source = max(range(len(pool.contents)), key=lambda lane: shared[lane])
    keep = shared[source] if source != best and shared[source] - shared[best] >= COPY_MIN_TOKENS else shared[best]
    pool.contents[best] = list(prompt[:keep])
    return Lease(best, keep)


def simulate_lanes(acquire: Callable[[LanePool, list[int]], Lease], conversations: int, seed: int) -> tuple[int, int]:
    """(cached, prompt) tokens of the conversations' turns for one random interleaving."""
    rng = random.Random(seed)
    pool = LanePool(8)
    system = [rng.randrange(30000) for _ in range(60)]
    history = {c: list(system) for c in range(conversations)}
    requests: list[int | None] = [c for c in range(conversations) for _ in range(4)]
    rng.shuffle(requests)
    for _ in range(len(requests) * 15 // 100):
        requests.insert(rng.randrange(len(requests)), None)
    running: list[tuple[int, list[int], int | None]] = []
    cached = total = 0

    def finish_oldest() -> None:
        lane, tokens, _ = running.pop(0)
        pool.release(lane, tokens)

    for c in requests:
        while len(running) >= 4 or not pool.num_free or (c is not None and any(r[2] == c for r in running)):
            finish_oldest()
        if c is None:
            prompt = [rng.randrange(30000) for _ in range(rng.randint(1500, 2500))]
        else:
            prompt = history[c] + [rng.randrange(30000) for _ in range(rng.randint(10, 40))]
        lease = acquire(pool, prompt)
        answer = [rng.randrange(30000) for _ in range(rng.randint(20, 80))]
        pool.contents[lease.lane] = prompt
        running.append((lease.lane, prompt + answer[:-1], c))
        if c is not None:
            cached += lease.keep
            total += len(prompt)
            history[c] = prompt + answer
    return cached, total


def main() -> None:
    """Print both comparisons as markdown tables."""
    print("| prefill policy | short TTFT p50 (s) | short TTFT p99 (s) | long prompts' TTFT (s) |")
    print("|---|---|---|---|")
    for name, shares, step_time in [("fifo, batch-bounded", fifo, 1e9), ("fifo, time-bounded", fifo, 0.5),
                                    ("max-min fair", max_min, 0.5),
                                    ("shortest first + floor", prompt_shares, 0.5),
                                    ("shortest first + floor, 0.25 s steps", prompt_shares, 0.25),
                                    ("shortest first + floor, 1 s steps", prompt_shares, 1.0)]:
        r = simulate_prefill(shares, step_time)
        print(f"| {name} | {r['short_ttft_p50']:.2f} | {r['short_ttft_p99']:.2f} | {r['long_ttft']} |")
    print()
    print("| admission | short TTFT p50 (s) | short TTFT p99 (s) | conversation turns' TTFT p50 (s) | "
          "turns' TTFT p99 (s) | every chat's TTFT, mean (s) | long prompts' TTFT (s) |")
    print("|---|---|---|---|---|---|---|")
    for name, aging, long_reads in [("arrival order, long prompts read together (before)", None, 0),
                                    ("arrival order, one long read at a time (the engine)", None, MAX_LONG_PREFILLS),
                                    ("smallest job first, 1 s aging", 1.0, 0),
                                    ("smallest job first, 3 s aging", 3.0, 0),
                                    ("smallest job first, 5 s aging", 5.0, 0)]:
        r = simulate_admission(aging, long_reads)
        print(f"| {name} | {r['short_ttft_p50']:.2f} | {r['short_ttft_p99']:.2f} | {r['turn_ttft_p50']:.2f} | "
              f"{r['turn_ttft_p99']:.2f} | {r['chat_ttft_mean']:.2f} | {r['long_ttft']} |")
    print()
    print("| conversations on 8 lanes | old score | least-loss | LanePool (no-cost, else LRU) |")
    print("|---|---|---|---|")
    for n in (2, 4, 8, 12, 16):
        ratios = []
        for acquire in (acquire_old, acquire_least_loss, LanePool.acquire):
            sums = [simulate_lanes(acquire, n, seed) for seed in range(20)]
            ratios.append(sum(c for c, _ in sums) / sum(t for _, t in sums))
        print(f"| {n} | " + " | ".join(f"{r:.3f}" for r in ratios) + " |")


if __name__ == "__main__":
    main()
