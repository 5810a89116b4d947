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

Lanes: 8 lanes, N conversations over one system prompt take 4 turns each in random order, 4 at a
time, with one-shot ~2,000-token prompts mixed in (15% of requests). Cached tokens over prompt
tokens for the conversations' turns, for the old score (2 x shared - held), least-loss eviction,
and ``LanePool`` (no-cost lane first, else LRU).

    python benchmarks/policies.py
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import streamserve.engine.scheduler as scheduler_module
from streamserve.bench import percentile
from streamserve.engine.budget import PrefillBudget
from streamserve.engine.config import EngineConfig
from streamserve.engine.lanes import COPY_MIN_TOKENS, LanePool, Lease, common_prefix_len
from streamserve.engine.sampling import SamplingParams
from streamserve.engine.scheduler import Scheduler, prompt_shares
from streamserve.engine.sequence import Sequence

Shares = Callable[[list[Sequence], int], list[tuple[Sequence, int]]]
_DUMMY: Any = object()
GRID = EngineConfig().prompt_grid


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


def step_seconds(chunks: list[scheduler_module.Chunk]) -> float:
    """The cost model: fixed + decode tokens + prompt tokens whose cost grows with their position."""
    total = 0.006
    for chunk in chunks:
        if len(chunk.tokens) == 1 and chunk.start >= len(chunk.seq.prompt_ids):
            total += 0.0015
        else:
            total += sum(0.0015 * (1 + (chunk.start + i) / 4000) for i in range(len(chunk.tokens)))
    return total


def simulate_prefill(shares: Shares, step_time: float) -> dict[str, Any]:
    """Run the workload through the real Scheduler and PrefillBudget; TTFTs in simulated seconds."""
    scheduler_module.prompt_shares = shares
    sched = Scheduler(LanePool(8, GRID), max_batch_tokens=512, grid=GRID)
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
        sched.admit()
        if not sched.running:
            now = arrivals[0][0]
            continue
        n_decoding = sched.num_decoding()
        chunks = sched.schedule(budget.tokens(n_decoding))
        seconds = step_seconds(chunks)
        budget.observe(n_decoding, sum(len(c.tokens) for c in chunks) - n_decoding, seconds)
        now += seconds
        for chunk in chunks:
            seq = chunk.seq
            seq.num_computed += len(chunk.tokens)
            if chunk.sample:
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
