"""How a step's prompt budget is shared among the prompts being prefilled, and cut into whole units.

A prompt is prefilled in *units* that every read of it cuts the same way, whatever the cache and the
load (docs/determinism.md): its full grid chunks ``[k * grid, (k + 1) * grid)``, then its tail (the last
``len % grid`` tokens) in one piece, padded to ``tail_rows`` batch rows. ``prompt_shares`` grants each
prompt its tokens of a step's budget; the grants are banked per sequence (``prompt_credit``) and
``whole_units`` prefills the credit in whole units.
"""

from __future__ import annotations

import sys

from streamserve.engine.lanes import grid_extent, tail_rows
from streamserve.engine.sequence import Sequence


def prompt_shares(prefilling: list[Sequence], budget: int) -> list[tuple[Sequence, int]]:
    """Split one step's ``budget`` of prompt tokens: a fair floor for each, then shortest remaining first.

    Every prefilling sequence first gets ``floor = max(1, budget // (2 * k))`` tokens (k sequences,
    ``budget >= k``); the rest goes to the sequences with the fewest prompt tokens left, in that
    order (ties by arrival). So a short prompt that arrives while long ones are prefilled gets at
    least half the budget, usually all it needs in its first step, whatever is in flight; and no
    prompt starves: one of ``P`` tokens is granted within ``ceil(P / floor)`` steps even while short
    prompts keep arriving. Shortest-first minimises the mean wait for a first token; the floor bounds
    the longest one's (``benchmarks/policies.py`` compares it with equal shares and arrival order).
    A sequence's tokens left are those neither prefilled nor granted yet (``prompt_credit``).
    """
    if not prefilling or budget <= 0:
        return []
    k = len(prefilling)
    floor = budget // (2 * k) or (1 if budget >= k else 0)
    shares = {id(seq): min(_left(seq), floor) for seq in prefilling}
    spare = budget - sum(shares.values())
    for seq in sorted(prefilling, key=lambda s: (_left(s), s.number)):
        if spare <= 0:
            break
        extra = min(_left(seq) - shares[id(seq)], spare)
        shares[id(seq)] += extra
        spare -= extra
    return [(seq, shares[id(seq)]) for seq in prefilling if shares[id(seq)] > 0]


def whole_units(prefilling: list[Sequence], capacity: int, grid: int, unit: int = 0) -> list[tuple[Sequence, int]]:
    """What each sequence prefills this step: the whole units its ``prompt_credit`` covers, within ``capacity``.

    A fresh prefill and one after a cached prefix (which ``LanePool`` cuts at a grid boundary) then
    decode every token in the same batch shape. Grid chunks are prefilled ``unit`` tokens at least at
    a time while the prompt has that many left. Units go shortest remaining prompt first, as the
    shares are granted, except that a sequence whose unit was left out for lack of room
    (``prefill_waits`` steps in a row) goes before those that waited less: with ``capacity`` at least
    one unit, the first in that order always prefills, so no prompt's credit waits more steps than
    there are prompts. Prefills are listed in arrival order.
    """
    prefills = {}
    for seq in sorted(prefilling, key=lambda s: (-s.prefill_waits, unfilled(s), s.number)):
        take = _fit(seq, seq.prompt_credit, capacity, grid, unit)
        if take > 0:
            prefills[id(seq)] = take
            capacity -= batch_rows(seq, take, grid)
            seq.prefill_waits = 0
        elif _fit(seq, seq.prompt_credit, sys.maxsize, grid, unit) > 0:  # only room was missing
            seq.prefill_waits += 1
    return [(seq, prefills[id(seq)]) for seq in prefilling if id(seq) in prefills]


def _fit(seq: Sequence, credit: int, capacity: int, grid: int, unit: int) -> int:
    """The most prompt tokens, in whole units from where ``seq`` stands, within ``credit`` and ``capacity`` rows;
    grid chunks at least ``unit`` tokens at a time while that many are left."""
    left = unfilled(seq)
    if credit >= left and capacity >= batch_rows(seq, left, grid):
        return left
    chunks = grid_extent(len(seq.prompt_ids), grid) - seq.num_computed
    take = max(0, min(chunks, grid_extent(min(credit, capacity), grid)))
    return take if take >= min(chunks, unit) else 0


def batch_rows(seq: Sequence, take: int, grid: int) -> int:
    """The batch rows that prefilling ``take`` prompt tokens of ``seq`` takes: its tail, if reached, is padded."""
    full = grid_extent(len(seq.prompt_ids), grid)
    tail = seq.num_computed + take - max(full, seq.num_computed)
    return take if tail <= 0 else take - tail + tail_rows(tail, grid)


def unfilled(seq: Sequence) -> int:
    """Prompt tokens not prefilled yet."""
    return len(seq.prompt_ids) - seq.num_computed


def _left(seq: Sequence) -> int:
    """Prompt tokens neither prefilled nor granted yet."""
    return unfilled(seq) - seq.prompt_credit
