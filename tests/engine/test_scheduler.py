"""Scheduler with fake Sequences (no model): admission, decode and prefill chunks, the token budgets, remove().

The prompt budget per step comes from ``PrefillBudget`` (tests/engine/test_budget.py); here it is given.
Most tests run with ``grid=1`` (every token a unit), which tests the shares' fairness rules token by
token; the tests under "Grid units" run them with the engine's 64-token grid.
"""

from __future__ import annotations

import itertools
import random
from typing import Any

import numpy as np
import pytest

from streamserve.engine.lanes import LanePool
from streamserve.engine.prefill import batch_rows, prompt_shares
from streamserve.engine.sampling import SamplingParams
from streamserve.engine.scheduler import Scheduler
from streamserve.engine.sequence import Sequence, SequenceStatus
from streamserve.engine.work import Work

_DUMMY: Any = object()  # the scheduler never touches a sequence's event loop or queue


def _seq(prompt_len: int, first_token: int = 100) -> Sequence:
    return Sequence(list(range(first_token, first_token + prompt_len)), SamplingParams(max_tokens=8), _DUMMY, _DUMMY)


ANY = 10_000  # a prompt budget that does not limit anything


def _scheduler(lanes: int = 4, *, max_num_batched_tokens: int = 64, grid: int = 1) -> Scheduler:
    return Scheduler(LanePool(lanes, grid), max_num_batched_tokens=max_num_batched_tokens, grid=grid)


def _run(chunks: list[Work], next_token: int = 7) -> None:
    """What the engine does after a step: count decoded tokens, append a sampled token where sampled."""
    for chunk in chunks:
        chunk.seq.num_computed += len(chunk.tokens)
        if chunk.sample:
            chunk.seq.output_ids.append(next_token)


def _decoding(sched: Scheduler, prompt_len: int = 4) -> Sequence:
    """Add a sequence and bring it to the decode phase (prompt in KV, one token sampled)."""
    seq = _seq(prompt_len)
    sched.add(seq)
    assert seq in sched.admit()
    seq.num_computed = len(seq.prompt_ids)
    seq.output_ids.append(42)
    return seq


# Admission


def test_admission_is_fifo_into_free_lanes() -> None:
    sched = _scheduler(lanes=2)
    seqs = [_seq(3, 100 * (i + 1)) for i in range(3)]
    for seq in seqs:
        sched.add(seq)
    assert sched.admit() == seqs[:2]
    assert list(sched.waiting) == [seqs[2]]
    assert sched.running == seqs[:2]
    assert {seqs[0].lane, seqs[1].lane} == {0, 1}
    assert all(s.status is SequenceStatus.RUNNING for s in seqs[:2])
    assert seqs[2].status is SequenceStatus.WAITING and seqs[2].lane == -1
    assert sched.admit() == []  # no free lane: nothing more


def test_admission_fills_a_lane_as_soon_as_it_is_released() -> None:
    sched = _scheduler(lanes=1)
    first, second = _seq(3), _seq(3)
    sched.add(first)
    sched.add(second)
    assert sched.admit() == [first]
    sched.remove(first)
    sched.lanes.release(first.lane, [])
    assert sched.admit() == [second]
    assert second.lane == first.lane


def test_admission_takes_cached_prefix_from_the_lane() -> None:
    sched = _scheduler(lanes=2)
    seq = _seq(6)
    lane_a, _, _ = sched.lanes.acquire([1])
    lane_b, _, _ = sched.lanes.acquire([1])
    sched.lanes.release(lane_b, [*seq.prompt_ids[:4], 1, 2])  # the longest prefix, released first
    sched.lanes.release(lane_a, seq.prompt_ids[:1])
    sched.add(seq)
    sched.admit()
    assert (seq.lane, seq.num_cached, seq.num_computed) == (lane_b, 4, 4)
    chunks = sched.schedule(ANY)
    assert [(c.tokens, c.start, c.sample) for c in chunks] == [(seq.prompt_ids[4:], 4, True)]


def test_has_work() -> None:
    sched = _scheduler(lanes=1)
    assert not sched.has_work()
    a, b = _seq(2), _seq(2)
    sched.add(a)
    assert sched.has_work()
    sched.admit()
    sched.add(b)
    assert sched.has_work()  # a is running
    sched.remove(a)
    # b waits, but the lane was not given back: nothing can run.
    assert not sched.has_work()
    sched.lanes.release(a.lane, [])
    assert sched.has_work()


# Long prompts: one read at a time, shorter requests pass the next


def _gated(lanes: int = 3, grid: int = 1) -> Scheduler:
    """Long means more than 10 tokens to read; one long read at a time."""
    return Scheduler(LanePool(lanes, grid), max_num_batched_tokens=64, grid=grid, long_prefill=10, max_long_prefills=1)


def test_a_second_long_prompt_waits_without_a_lane_and_shorter_ones_pass_it() -> None:
    sched = _gated()
    first, second, short = _seq(40, 100), _seq(40, 200), _seq(5, 300)
    for seq in (first, second, short):
        sched.add(seq)
    assert sched.admit() == [first, short]
    assert list(sched.waiting) == [second] and second.lane == -1
    assert sched.lanes.num_free == 1  # the free lane is not given to the long prompt


def test_a_waiting_long_prompt_keeps_its_place_and_goes_once_the_read_ahead_is_nearly_done() -> None:
    sched = _gated(lanes=2)
    first, second, later = _seq(40, 100), _seq(40, 200), _seq(5, 300)
    for seq in (first, second):
        sched.add(seq)
    assert sched.admit() == [first]
    first.num_computed = 30  # exactly 10 left: no longer a long read
    sched.add(later)
    assert sched.admit() == [second]
    assert list(sched.waiting) == [later]


def test_long_reads_are_counted_after_the_prompt_cache() -> None:
    sched = _gated()
    first = _seq(40, 100)
    sched.add(first)
    sched.admit()
    cached = sched.lanes.acquire([999])[0]
    again = _seq(44, 200)
    sched.lanes.release(cached, again.prompt_ids[:40])
    sched.add(again)  # 40 of its 44 tokens are cached: a short read
    assert sched.admit() == [again]
    assert again.num_cached == 40


def _step_reads(sched: Scheduler, budget: int) -> None:
    """One step's prompt reads, recorded in the lanes as the engine does after each chunk."""
    for chunk in sched.schedule(budget):
        chunk.seq.num_computed += len(chunk.tokens)
        if chunk.kind != "decode":
            sched.lanes.hold_prefill(chunk.seq.lane, chunk.seq.prompt_ids, chunk.seq.num_computed)


def test_a_prompt_being_read_is_copied_once_read_not_read_twice() -> None:
    sched = _gated(grid=4)
    choice_a, choice_b = _seq(40, 100), _seq(40, 100)  # n=2: the same prompt twice
    sched.add(choice_a)
    sched.add(choice_b)
    assert sched.admit() == [choice_a]
    _step_reads(sched, 28)
    assert choice_a.num_computed == 28
    assert sched.admit() == []  # a long read under way
    _step_reads(sched, 4)
    assert sched.admit() == []  # 8 left: not long, but its sibling would read them again
    _step_reads(sched, 8)
    assert not choice_a.is_prefilling
    assert sched.admit() == [choice_b]
    assert (choice_b.copy_from, choice_b.num_cached) == (choice_a.lane, 36)  # the grid, one token left to read


def test_only_a_read_that_would_give_a_whole_grid_chunk_more_is_waited_for() -> None:
    sched = _scheduler(lanes=3, grid=8)
    reading = _seq(40, 100)
    sched.add(reading)
    sched.admit()
    short_copy, other = _seq(7, 100), _seq(40, 500)  # shares less than a chunk; shares nothing
    sched.add(short_copy)
    sched.add(other)
    assert sched.admit() == [short_copy, other]
    same = _seq(40, 100)
    sched.add(same)
    assert sched.admit() == []
    sched.remove(reading)  # e.g. its client went away: nothing to wait for
    sched.lanes.release(reading.lane, [])
    assert sched.admit() == [same]


def test_without_a_limit_long_prompts_are_admitted_in_arrival_order() -> None:
    sched = Scheduler(LanePool(3), max_num_batched_tokens=64, grid=1, long_prefill=10, max_long_prefills=0)
    seqs = [_seq(40, 100), _seq(40, 200), _seq(5, 300)]
    for seq in seqs:
        sched.add(seq)
    assert sched.admit() == seqs


def test_two_long_reads_at_a_time_when_asked() -> None:
    sched = Scheduler(LanePool(4), max_num_batched_tokens=64, grid=1, long_prefill=10, max_long_prefills=2)
    seqs = [_seq(40, 100), _seq(40, 200), _seq(40, 300), _seq(5, 400)]
    for seq in seqs:
        sched.add(seq)
    assert sched.admit() == [seqs[0], seqs[1], seqs[3]]
    assert list(sched.waiting) == [seqs[2]]


# Decode chunks


def test_decode_chunks_are_one_token_each_at_the_next_position() -> None:
    sched = _scheduler(lanes=3)
    seqs = [_decoding(sched, prompt_len=n) for n in (3, 5, 9)]
    seqs[1].output_ids.append(43)
    seqs[1].num_computed += 1
    chunks = sched.schedule(ANY)
    assert [c.seq for c in chunks] == seqs
    for chunk in chunks:
        assert chunk.tokens == [chunk.seq.output_ids[-1]]
        assert chunk.start == chunk.seq.num_computed == chunk.seq.num_tokens - 1
        assert chunk.sample


# Prefill chunks


def test_num_decoding_counts_sequences_past_their_prompt() -> None:
    sched = _scheduler(lanes=4)
    _decoding(sched)
    _decoding(sched)
    sched.add(_seq(5))
    sched.admit()
    assert sched.num_decoding() == 2


def test_prefill_is_capped_by_max_num_batched_tokens() -> None:
    sched = _scheduler(max_num_batched_tokens=16)
    seq = _seq(40)
    sched.add(seq)
    sched.admit()
    chunks = sched.schedule(ANY)
    assert [(c.tokens, c.start, c.sample) for c in chunks] == [(seq.prompt_ids[:16], 0, False)]


def test_prefill_gives_each_a_floor_then_the_rest_to_the_shortest_in_arrival_order() -> None:
    sched = _scheduler(max_num_batched_tokens=16)
    a, b, c = _seq(10), _seq(10, first_token=200), _seq(10, first_token=300)
    for seq in (a, b, c):
        sched.add(seq)
    sched.admit()
    chunks = sched.schedule(ANY)
    # floor 16 // (2 * 3) = 2 each; the 10 left go to the shortest, ties in arrival order: a, then b.
    assert [(ch.seq, len(ch.tokens), ch.start, ch.sample) for ch in chunks] == [
        (a, 10, 0, True), (b, 4, 0, False), (c, 2, 0, False)]
    assert chunks[1].tokens == b.prompt_ids[:4]


def test_prefill_while_decoding_is_capped_by_the_prompt_budget() -> None:
    sched = _scheduler(lanes=4, max_num_batched_tokens=64)
    decoders = [_decoding(sched), _decoding(sched)]
    new = _seq(10, first_token=500)
    sched.add(new)
    sched.admit()
    starts, samples = [], []
    for _ in range(3):
        chunks = sched.schedule(4)
        assert [c.seq for c in chunks[:2]] == decoders and all(len(c.tokens) == 1 for c in chunks[:2])
        prefill = chunks[2:]
        assert len(prefill) == 1 and prefill[0].seq is new
        assert prefill[0].tokens == new.prompt_ids[prefill[0].start : prefill[0].start + len(prefill[0].tokens)]
        starts.append((prefill[0].start, len(prefill[0].tokens)))
        samples.append(prefill[0].sample)
        _run(chunks)
    assert starts == [(0, 4), (4, 4), (8, 2)]
    assert samples == [False, False, True]
    assert not new.is_prefilling and new.output_ids == [7]
    # From now on the new sequence decodes like the others.
    assert [len(c.tokens) for c in sched.schedule(4)] == [1, 1, 1]


def test_prefill_while_decoding_is_capped_by_max_num_batched_tokens() -> None:
    sched = _scheduler(lanes=4, max_num_batched_tokens=5)
    for _ in range(3):
        _decoding(sched)
    new = _seq(10, first_token=500)
    sched.add(new)
    sched.admit()
    chunks = sched.schedule(64)
    assert sum(len(c.tokens) for c in chunks) == 5
    assert chunks[-1].seq is new and len(chunks[-1].tokens) == 2 and not chunks[-1].sample


def test_zero_prompt_budget_decodes_every_running_sequence_and_moves_every_prompt() -> None:
    sched = _scheduler(lanes=4)
    decoders = [_decoding(sched), _decoding(sched)]
    prompts = [_seq(5, first_token=300), _seq(5, first_token=400)]
    for seq in prompts:
        sched.add(seq)
    sched.admit()
    assert [(c.seq, len(c.tokens)) for c in sched.schedule(0)] == [
        (decoders[0], 1), (decoders[1], 1), (prompts[0], 1), (prompts[1], 1)]


def test_prompt_budget_is_shared_by_prefilling_sequences() -> None:
    sched = _scheduler(lanes=4, max_num_batched_tokens=64)
    _decoding(sched)
    a, b = _seq(3, first_token=300), _seq(3, first_token=400)
    sched.add(a)
    sched.add(b)
    sched.admit()
    chunks = sched.schedule(4)
    assert [(c.seq, len(c.tokens), c.sample) for c in chunks[1:]] == [(a, 3, True), (b, 1, False)]


def test_sample_flag_only_on_the_chunk_that_completes_the_prompt() -> None:
    sched = _scheduler(lanes=1, max_num_batched_tokens=8)
    seq = _seq(20)
    sched.add(seq)
    sched.admit()
    flags = []
    while seq.is_prefilling:
        (chunk,) = sched.schedule(ANY)
        flags.append((len(chunk.tokens), chunk.sample))
        _run([chunk])
    assert flags == [(8, False), (8, False), (4, True)]


def test_budget_invariants_in_a_random_simulation() -> None:
    """Random arrivals, lengths and prompt budgets: every step stays in budget, every sequence finishes."""
    rng = random.Random(1234)
    max_batch, lanes = 12, 3
    sched = _scheduler(lanes=lanes, max_num_batched_tokens=max_batch)
    pending = [(_seq(rng.randint(1, 30), first_token=1000 * i), rng.randint(1, 6)) for i in range(20)]
    limits = {id(seq): limit for seq, limit in pending}
    finished: list[Sequence] = []
    for _step in range(500):
        if pending and rng.random() < 0.5:
            sched.add(pending.pop(0)[0])
        sched.admit()
        prompt_budget = rng.randint(1, 8) if sched.num_decoding() else max_batch
        chunks = sched.schedule(prompt_budget)
        if not chunks:
            assert not sched.running
            if not pending and not sched.waiting:
                break
            continue
        decodes = [c for c in chunks if not c.seq.is_prefilling]
        prefills = [c for c in chunks if c.seq.is_prefilling]
        assert sum(len(c.tokens) for c in chunks) <= max_batch
        assert sum(len(c.tokens) for c in prefills) <= max(prompt_budget, len(prefills))
        assert len({id(c.seq) for c in chunks}) == len(chunks)
        assert {id(c.seq) for c in decodes} == {id(s) for s in sched.running if not s.is_prefilling}
        assert all(len(c.tokens) == 1 and c.sample for c in decodes)
        assert {id(c.seq) for c in prefills} == {id(s) for s in sched.running if s.is_prefilling}, (
            "a prefilling sequence got no tokens")
        for c in chunks:
            assert c.start == c.seq.num_computed
            assert c.tokens == (c.seq.prompt_ids + c.seq.output_ids)[c.start : c.start + len(c.tokens)]
            assert c.sample == (c.start + len(c.tokens) >= len(c.seq.prompt_ids))
        assert len({s.lane for s in sched.running}) == len(sched.running) <= lanes
        _run(chunks)
        for seq in list(sched.running):
            if len(seq.output_ids) >= limits[id(seq)]:
                sched.remove(seq)
                sched.lanes.release(seq.lane, seq.tokens_in_kv())
                finished.append(seq)
    assert len(finished) == 20
    assert all(len(s.output_ids) == limits[id(s)] for s in finished)


# Fairness: a short prompt is not read behind long ones, and long ones still finish


def _prefill_steps(sched: Scheduler, budget: int, until: Sequence) -> int:
    """Run steps with ``budget`` until ``until`` has its first token; the number of steps it took."""
    for step in range(1, 10_000):
        _run(sched.schedule(budget))
        if not until.is_prefilling:
            return step
    raise AssertionError("never finished its prompt")


def test_short_prompt_arriving_behind_a_long_one_is_read_in_its_first_step() -> None:
    sched = _scheduler(lanes=4, max_num_batched_tokens=512)
    long = _seq(4000)
    sched.add(long)
    sched.admit()
    for _ in range(5):
        _run(sched.schedule(64))
    short = _seq(25, first_token=9000)
    sched.add(short)
    sched.admit()
    chunks = sched.schedule(64)
    assert [(c.seq, len(c.tokens), c.sample) for c in chunks] == [(long, 39, False), (short, 25, True)]


@pytest.mark.parametrize("n_long", [1, 3, 7])
def test_short_prompt_steps_to_first_token_do_not_grow_with_the_long_prompts_in_flight(n_long: int) -> None:
    """At least half the budget goes to the shortest prompt, whatever else is being read."""
    sched = _scheduler(lanes=8, max_num_batched_tokens=512)
    for i in range(n_long):
        sched.add(_seq(4000, first_token=10_000 * (i + 1)))
    sched.admit()
    _run(sched.schedule(64))
    short = _seq(60, first_token=5)
    sched.add(short)
    sched.admit()
    assert _prefill_steps(sched, 64, short) == 2  # ceil(60 / (64 / 2))


def test_a_long_prompt_is_not_starved_by_a_stream_of_short_ones() -> None:
    """Short prompts arrive every step; the long one still gets its floor, so it ends in ceil(P / floor) steps."""
    sched = _scheduler(lanes=3, max_num_batched_tokens=64)
    long = _seq(300)
    sched.add(long)
    sched.admit()
    budget, steps = 32, 0
    first_tokens = itertools.count(1000, 50)  # prompts sharing no prefix, so none waits for another's read
    while long.is_prefilling:
        for seq in list(sched.running):
            if seq is not long and not seq.is_prefilling:  # a short one got its first token: it leaves
                sched.remove(seq)
                sched.lanes.release(seq.lane, [])
        while sched.lanes.num_free:
            sched.add(_seq(40, first_token=next(first_tokens)))
            sched.admit()
        chunks = sched.schedule(budget)
        assert sum(len(c.tokens) for c in chunks) <= budget
        assert next(len(c.tokens) for c in chunks if c.seq is long) >= budget // (2 * 3)
        _run(chunks)
        steps += 1
    assert steps <= -(-300 // (budget // (2 * 3)))


def test_nearly_done_long_prompt_counts_as_short() -> None:
    """Shortest *remaining* first: a long prompt with 10 tokens left goes before a new 50-token one."""
    sched = _scheduler(lanes=2, max_num_batched_tokens=512)
    long = _seq(1000)
    sched.add(long)
    sched.admit()
    long.num_computed = 990
    new = _seq(50, first_token=5000)
    sched.add(new)
    sched.admit()
    chunks = sched.schedule(40)
    assert [(c.seq, len(c.tokens), c.sample) for c in chunks] == [(long, 10, True), (new, 30, False)]


def test_prompt_shares_stay_within_budget_and_prompt() -> None:
    rng = random.Random(7)
    for _ in range(300):
        seqs = [_seq(rng.randint(1, 500), first_token=1000 * i) for i in range(rng.randint(1, 8))]
        for seq in seqs:
            seq.num_computed = rng.randint(0, len(seq.prompt_ids) - 1)
        budget = rng.randint(len(seqs), 600)
        shares = prompt_shares(seqs, budget)
        assert sum(take for _, take in shares) <= budget
        assert {id(seq) for seq, _ in shares} == {id(seq) for seq in seqs}
        floor = budget // (2 * len(seqs))
        for seq, take in shares:
            left = len(seq.prompt_ids) - seq.num_computed
            assert min(left, max(floor, 1)) <= take <= left
        if sum(len(s.prompt_ids) - s.num_computed for s in seqs) >= budget:
            assert sum(take for _, take in shares) == budget  # work-conserving


# remove()


def test_remove_takes_a_sequence_out_of_either_queue() -> None:
    sched = _scheduler(lanes=1)
    running, waiting, other = _seq(2), _seq(2), _seq(2)
    sched.add(running)
    sched.add(waiting)
    sched.admit()
    sched.remove(waiting)
    assert list(sched.waiting) == []
    sched.remove(running)
    assert sched.running == []
    sched.remove(other)  # unknown: no error
    assert not sched.schedule(ANY)


def test_remove_uses_identity_not_equality() -> None:
    sched = _scheduler(lanes=2)
    a, b = _seq(3), _seq(3)  # equal fields except number
    b.number = a.number
    sched.add(a)
    sched.add(b)
    sched.admit()
    sched.remove(b)
    assert sched.running == [a]


@pytest.mark.parametrize("lanes", [1, 3])
def test_removed_running_sequence_gets_no_more_chunks(lanes: int) -> None:
    sched = _scheduler(lanes=lanes)
    seqs = [_decoding(sched) for _ in range(lanes)]
    sched.remove(seqs[0])
    assert seqs[0] not in [c.seq for c in sched.schedule(ANY)]


# Grid units: prompts are read in whole 64-token grid chunks plus one whole tail

GRID = 64


def _read(sched: Scheduler, seq: Sequence, budget: int) -> list[tuple[str, int, int]]:
    """Steps until ``seq`` has its first token: each of its chunks as (kind, start, length)."""
    cuts = []
    while seq.is_prefilling:
        chunks = sched.schedule(budget)
        cuts += [(c.kind, c.start, len(c.tokens)) for c in chunks if c.seq is seq]
        _run(chunks)
    return cuts


@pytest.mark.parametrize("budget", [5, 40, 64, 100, 200, 512])
def test_a_prompt_is_cut_at_the_grid_whatever_the_budget(budget: int) -> None:
    sched = _scheduler(lanes=2, max_num_batched_tokens=512, grid=GRID)
    seq = _seq(200)
    sched.add(seq)
    sched.admit()
    cuts = _read(sched, seq, budget)
    assert [c for c in cuts if c[0] == "tail"] == [("tail", 192, 8)]  # the tail: one piece, last
    grid_cuts = [c for c in cuts if c[0] == "grid"]
    assert all(start % GRID == 0 and length % GRID == 0 for _, start, length in grid_cuts)
    assert sum(length for _, _, length in grid_cuts) == 192
    assert cuts[-1][0] == "tail"


def test_a_prompt_of_whole_chunks_samples_its_last_grid_chunk() -> None:
    sched = _scheduler(lanes=1, max_num_batched_tokens=512, grid=GRID)
    seq = _seq(128)
    sched.add(seq)
    sched.admit()
    (chunk,) = sched.schedule(ANY)
    assert (chunk.kind, chunk.start, len(chunk.tokens), chunk.sample) == ("grid", 0, 128, True)


def test_a_step_reaching_the_tail_reads_it_as_a_chunk_of_its_own() -> None:
    sched = _scheduler(lanes=1, max_num_batched_tokens=512, grid=GRID)
    seq = _seq(150)
    sched.add(seq)
    sched.admit()
    chunks = sched.schedule(ANY)
    assert [(c.kind, c.start, len(c.tokens), c.sample) for c in chunks] == [
        ("grid", 0, 128, False), ("tail", 128, 22, True)]


def test_grants_smaller_than_a_chunk_are_banked_until_one_is_covered() -> None:
    """A budget of 20 a step beside decoding streams: a grid chunk every fourth step, none lost."""
    sched = _scheduler(lanes=2, max_num_batched_tokens=512, grid=GRID)
    _decoding(sched)
    seq = _seq(300)
    sched.add(seq)
    sched.admit()
    read = []
    for _ in range(8):
        chunks = sched.schedule(20)
        read.append(sum(len(c.tokens) for c in chunks if c.seq is seq))
        _run(chunks)
    assert read == [0, 0, 0, 64, 0, 0, 64, 0]
    assert seq.prompt_credit == 160 - 128


def test_a_cached_prefix_continues_on_the_grid() -> None:
    """A lane reused up to a grid boundary: the rest is read in the chunks a fresh read uses."""
    sched = _scheduler(lanes=1, max_num_batched_tokens=512, grid=GRID)
    prompt = list(range(1000, 1200))
    lane, _, _ = sched.lanes.acquire([1])
    sched.lanes.release(lane, prompt[:170], 128)  # 128 tokens of full chunks, then a tail and output
    seq = Sequence(prompt, SamplingParams(max_tokens=8), _DUMMY, _DUMMY)
    sched.add(seq)
    sched.admit()
    assert seq.num_cached == 128
    assert _read(sched, seq, ANY) == [("grid", 128, 64), ("tail", 192, 8)]


def test_grid_short_prompt_arriving_behind_a_long_one_is_read_in_its_first_step() -> None:
    sched = _scheduler(lanes=4, max_num_batched_tokens=512, grid=GRID)
    long = _seq(4000)
    sched.add(long)
    sched.admit()
    for _ in range(5):
        _run(sched.schedule(128))
    short = _seq(25, first_token=9000)
    sched.add(short)
    sched.admit()
    chunks = sched.schedule(128)
    assert [(c.seq, c.kind, len(c.tokens), c.sample) for c in chunks if c.seq is short] == [
        (short, "tail", 25, True)]


def test_grid_long_prompt_is_not_starved_by_a_stream_of_short_ones() -> None:
    """Short prompts arrive every step; the long one's floor still adds up to a chunk every few steps."""
    sched = _scheduler(lanes=3, max_num_batched_tokens=512, grid=GRID)
    long = _seq(640)
    sched.add(long)
    sched.admit()
    budget, steps, shorts = 64, 0, 0
    while long.is_prefilling:
        for seq in list(sched.running):
            if seq is not long and not seq.is_prefilling:
                sched.remove(seq)
                sched.lanes.release(seq.lane, [])
        while sched.lanes.num_free:
            shorts += 1  # each prompt its own (the same prompt again would wait for the read under way)
            sched.add(_seq(40, first_token=1000 * shorts))
            sched.admit()
        chunks = sched.schedule(budget)
        assert all(c.kind != "grid" or (c.start % GRID == 0 and len(c.tokens) % GRID == 0) for c in chunks)
        _run(chunks)
        steps += 1
    floor = budget // (2 * 3)
    assert steps <= -(-640 // floor) + 1


def test_grid_budget_invariants_in_a_random_simulation() -> None:
    """Random arrivals, lengths, cached prefixes and budgets: whole units only, within the batch, all finish."""
    rng = random.Random(99)
    max_batch, lanes = 200, 3
    sched = _scheduler(lanes=lanes, max_num_batched_tokens=max_batch, grid=GRID)
    pending = [(_seq(rng.randint(1, 400), first_token=1000 * i), rng.randint(1, 4)) for i in range(20)]
    limits = {id(seq): limit for seq, limit in pending}
    finished = 0
    for _step in range(3000):
        if pending and rng.random() < 0.3:
            sched.add(pending.pop(0)[0])
        sched.admit()
        chunks = sched.schedule(rng.randint(1, 150))
        assert sum(len(c.tokens) for c in chunks) <= max_batch
        for c in chunks:
            full = len(c.seq.prompt_ids) // GRID * GRID
            if c.kind == "grid":
                assert c.start % GRID == 0 and len(c.tokens) % GRID == 0 and c.start + len(c.tokens) <= full
            elif c.kind == "tail":
                assert (c.start, c.start + len(c.tokens)) == (full, len(c.seq.prompt_ids)) and c.sample
        _run(chunks)
        for seq in list(sched.running):
            if len(seq.output_ids) >= limits[id(seq)]:
                sched.remove(seq)
                sched.lanes.release(seq.lane, seq.tokens_in_kv(),
                                    min(seq.num_computed, len(seq.prompt_ids) // GRID * GRID))
                finished += 1
        if not pending and not sched.running and not sched.waiting:
            break
    assert finished == 20


def test_grid_banked_credit_of_many_prompts_is_read_within_the_step_budget() -> None:
    """Eight prompts granted a few tokens a step: their credits cover a chunk together, yet no step reads them all."""
    sched = _scheduler(lanes=8, max_num_batched_tokens=512, grid=GRID)
    prompts = [_seq(10 * GRID + 5, first_token=1000 * i) for i in range(8)]
    for seq in prompts:
        sched.add(seq)
    sched.admit()
    budget, longest_wait = 16, 0
    for _step in range(2000):
        chunks = sched.schedule(budget)
        assert sum(len(c.tokens) for c in chunks if c.kind != "decode") <= max(budget, GRID)
        longest_wait = max([longest_wait, *(seq.prefill_waits for seq in sched.running)])
        _run(chunks)
        if not any(seq.is_prefilling for seq in prompts):
            break
    assert not any(seq.is_prefilling for seq in prompts)
    assert 0 < longest_wait <= len(prompts)


def test_grid_a_unit_left_out_for_lack_of_room_goes_first_next_step() -> None:
    """Shortest-first reads would starve a long prompt behind short ones; a skipped unit is read the next step."""
    sched = _scheduler(lanes=2, max_num_batched_tokens=512, grid=GRID)
    long = _seq(4 * GRID)
    sched.add(long)
    sched.admit()
    long.prompt_credit = GRID
    short = _seq(40, first_token=1000)
    sched.add(short)
    short.prompt_credit = 40
    sched.admit()
    first = sched.schedule(0)
    assert [(c.seq, len(c.tokens)) for c in first if c.kind != "decode"] == [(short, 40)]
    assert long.prefill_waits == 1
    _run(first)
    second = sched.schedule(0)
    assert [(c.seq, len(c.tokens)) for c in second if c.kind != "decode"] == [(long, GRID)]
    assert long.prefill_waits == 0


# The same prompt again: it waits for a read under way, then reuses it whole and reads nothing


def test_the_same_short_prompt_waits_for_the_read_under_way_then_draws_from_its_logits() -> None:
    sched = _scheduler(lanes=3, max_num_batched_tokens=64, grid=GRID)
    first, again, other = _seq(20, 100), _seq(20, 100), _seq(20, 300)
    for seq in (first, again, other):
        sched.add(seq)
    assert sched.admit() == [first, other]  # shorter than a grid chunk, yet the same prompt waits
    assert list(sched.waiting) == [again]
    chunks = sched.schedule(ANY)
    assert {(c.seq.number, c.kind) for c in chunks} == {(first.number, "tail"), (other.number, "tail")}
    _run(chunks)
    sched.lanes.hold_prompt(first.lane, first.prompt_ids, np.zeros(1, dtype=np.float32))
    assert sched.admit() == [again]
    assert again.num_cached == 20 and again.first_logits is not None and not again.is_prefilling
    chunks = sched.schedule(ANY)
    cached = [c for c in chunks if c.seq is again]
    assert [(c.kind, c.tokens, c.sample) for c in cached] == [("cached", [], True)]
    assert sched.num_decoding() == 2  # first and other: the cached draw takes no decode row


def test_padded_tails_stay_within_the_batch() -> None:
    """Tails of 61 tokens take a whole chunk of rows each: a 190-row batch holds two, not three."""
    sched = _scheduler(lanes=3, max_num_batched_tokens=190, grid=GRID)
    seqs = [_seq(61, 1000 * i) for i in range(1, 4)]
    for seq in seqs:
        sched.add(seq)
    sched.admit()
    for seq in seqs:
        seq.prompt_credit = 61
    chunks = sched.schedule(ANY)
    assert len(chunks) == 2 and all(c.kind == "tail" and len(c.tokens) == 61 for c in chunks)
    assert sum(batch_rows(c.seq, len(c.tokens), GRID) for c in chunks) == 128


def test_a_prompt_prefills_alone_only_while_nothing_else_runs_or_waits() -> None:
    sched = _scheduler(lanes=2, max_num_batched_tokens=512, grid=GRID)
    long = _seq(600, 100)
    sched.add(long)
    sched.admit()
    assert sched.prefills_alone()
    chunks = sched.schedule(512)  # what the engine grants a prompt read alone: the whole batch
    assert sum(len(c.tokens) for c in chunks) == 512
    sched.add(_seq(10, 5000))
    assert not sched.prefills_alone()  # someone waits for the next step
    sched.admit()
    assert not sched.prefills_alone()  # someone else runs


def test_beside_other_work_grid_chunks_are_prefilled_prefill_chunks_at_a_time() -> None:
    sched = Scheduler(LanePool(3, GRID), max_num_batched_tokens=512, grid=GRID, prefill_chunks=2)
    stream = _decoding(sched)
    long = _seq(3 * GRID + 10, 500)
    sched.add(long)
    sched.admit()
    reads = []
    while long.is_prefilling:
        chunks = sched.schedule(40)  # the budget beside a stream: less than a grid chunk a step
        reads += [(c.kind, len(c.tokens)) for c in chunks if c.seq is long]
        _run(chunks)
    assert reads == [("grid", 2 * GRID), ("grid", GRID), ("tail", 10)]  # the last chunk alone: all there is left
    assert stream.is_decoding
    small = Scheduler(LanePool(2, GRID), max_num_batched_tokens=GRID + 1, grid=GRID, prefill_chunks=2)
    _decoding(small)
    seq = _seq(2 * GRID, 900)
    small.add(seq)
    small.admit()
    for _ in range(4):  # a batch with room for one chunk only still reads, a chunk at a time
        _run(small.schedule(ANY))
    assert not seq.is_prefilling
