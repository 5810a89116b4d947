"""LanePool: the KV lanes (llama.cpp seq_ids), what each holds, and prompt-prefix reuse across requests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

Logits = npt.NDArray[np.float32]

COPY_MIN_TOKENS = 8
"""A prefix held by another lane is copied only when it saves at least this many prompt tokens (a copy
moves the whole lane, a few ms; reading a prompt token costs a few ms on a 2-core CPU). Taking a lane
that discards no more than this many tokens costs nothing worth keeping, for the same reason."""


def common_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading token ids ``a`` and ``b`` share.

    Bisects on slice comparisons, which run in C: a few thousand tokens take microseconds, not a
    millisecond, and the scheduler asks for every lane at every admission.
    """
    lo, hi = 0, min(len(a), len(b))
    if a[:hi] == b[:hi]:
        return hi
    while hi - lo > 1:  # a[:lo] == b[:lo] and a[:hi] != b[:hi]
        mid = (lo + hi) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid
    return lo


class Lease(NamedTuple):
    """A lane taken for a prompt: ``keep`` leading prompt tokens are reused, copied first from ``source`` if set.

    ``keep`` is a multiple of the pool's grid, so the prompt goes on reading in the chunks a fresh read uses;
    or the whole prompt, when a lane holds exactly this prompt, read in full, with the logits of its last
    token (``whole_prompt_logits``), from which the first token is drawn without decoding anything.
    """

    lane: int
    keep: int
    source: int | None = None


class PromptLogits(NamedTuple):
    """A lane's first ``length`` tokens are a whole prompt read as a fresh read reads it; ``logits`` of its last."""

    length: int
    logits: Logits


class LanePool:
    """Hands out free lanes so that a prompt reuses the most cached tokens and discards the least.

    A released lane keeps its tokens: the prompt cache (a conversation's next turn extends them).
    Only a lane's *grid extent* can be reused: its leading tokens written by full grid chunks of
    ``grid`` tokens, which a fresh read of any prompt starting with them writes the same way; a
    prompt's tail and generated tokens were computed in other batch shapes, so a fresh read would
    give other logits (docs/determinism.md). A lane's reusable prefix for a prompt is therefore the
    tokens they share, up to its grid extent, rounded down to a multiple of ``grid``. Taking a free
    lane keeps that prefix and discards the rest of its extent, its *loss*. ``acquire`` takes, in
    this order:

    1. a free lane that costs nothing (loss of at most ``COPY_MIN_TOKENS``: an empty lane, or one
       whose tokens the prompt continues, the conversation's own lane), the one sharing most first;
    2. otherwise the least recently released free lane (LRU).

    Whichever lane it takes, the longest prefix held by any lane, free or busy, is copied into it
    (``source``) when that saves more than reading it again, so a new conversation sharing a system
    prompt never needs another conversation's lane to reuse it. With N <= lanes conversations, each
    one's next turn therefore finds its whole history cached. LRU rather than least-loss eviction:
    least-loss keeps large one-shot caches and evicts small, live conversations (``benchmarks/policies.py``
    simulates both on a mix of multi-turn chats and one-shot long prompts).
    """

    def __init__(self, n_lanes: int, grid: int = 1) -> None:
        self.grid = grid
        self.contents: list[list[int]] = [[] for _ in range(n_lanes)]
        self.extents: list[int] = [0] * n_lanes
        self.prompts: list[PromptLogits | None] = [None] * n_lanes
        self._free: list[int] = list(range(n_lanes))  # least recently released first

    @property
    def num_free(self) -> int:
        """Lanes not held by a running sequence."""
        return len(self._free)

    def acquire(self, prompt: Sequence[int]) -> Lease:
        """Take the best free lane for ``prompt``, saying how many leading prompt tokens it will hold.

        At least one prompt token is always left to decode, since sampling needs its logits.
        """
        shared = [self.reusable(lane, prompt) for lane in range(len(self.contents))]
        free_of_cost = [lane for lane in self._free if self.extents[lane] - shared[lane] <= COPY_MIN_TOKENS]
        # max() keeps the first, least recently released, of ties; without a free-of-cost lane, LRU.
        best = max(free_of_cost, key=lambda lane: shared[lane]) if free_of_cost else self._free[0]
        self._free.remove(best)
        source = max(range(len(self.contents)), key=lambda lane: shared[lane])
        if source != best and shared[source] - shared[best] >= COPY_MIN_TOKENS:
            keep, copy = shared[source], source
        else:
            keep, copy = shared[best], None
        self.prompts[best] = self.prompts[best if copy is None else copy] if keep == len(prompt) else None
        self.contents[best] = list(prompt[:keep])
        self.extents[best] = min(keep, grid_extent(len(prompt), self.grid))
        return Lease(best, keep, copy)

    def whole_prompt_logits(self, lane: int) -> Logits | None:
        """The logits of the last token of the whole prompt ``lane`` holds, if it holds one (``hold_prompt``)."""
        whole = self.prompts[lane]
        return whole.logits if whole is not None else None

    def best_reuse(self, prompt: Sequence[int]) -> int:
        """The most leading tokens of ``prompt`` that ``acquire`` could reuse now, from any lane."""
        return max((self.reusable(lane, prompt) for lane in range(len(self.contents))), default=0)

    def reusable(self, lane: int, prompt: Sequence[int]) -> int:
        """Leading tokens of ``prompt`` that ``lane`` can give: all of them if the lane holds this very prompt
        with its last logits, else the shared ones within its grid extent, in whole grid chunks (leaving at
        least one prompt token to decode, since sampling needs its logits).
        """
        whole = self.prompts[lane]
        if whole is not None and whole.length == len(prompt) and self.contents[lane][: whole.length] == prompt:
            return whole.length
        return reusable_prefix(self.contents[lane], self.extents[lane], prompt, self.grid)

    def hold(self, lane: int, tokens: list[int], extent: int) -> None:
        """Record what a lane's KV memory holds now, the first ``extent`` tokens written by full grid chunks."""
        self.contents[lane] = tokens
        self.extents[lane] = min(extent, len(tokens))
        self.prompts[lane] = None

    def hold_prefill(self, lane: int, prompt: list[int], n_filled: int) -> None:
        """Record a prompt prefilled up to ``n_filled`` tokens: later prompts may copy it while it is prefilled."""
        self.hold(lane, prompt[:n_filled], grid_extent(n_filled, self.grid))

    def hold_prompt(self, lane: int, prompt: list[int], logits: Logits) -> None:
        """Record a whole prompt read, with the logits of its last token: the same prompt reuses all of it."""
        self.hold(lane, list(prompt), grid_extent(len(prompt), self.grid))
        self.prompts[lane] = PromptLogits(len(prompt), logits)

    def release(self, lane: int, tokens: list[int], extent: int | None = None) -> None:
        """Give a lane back, remembering the tokens its KV memory now holds (``hold``; extent: all of them).

        A whole prompt recorded by ``hold_prompt`` stays reusable if ``tokens`` still start with it.
        """
        whole = self.prompts[lane]
        kept = whole is not None and self.contents[lane][: whole.length] == tokens[: whole.length]
        self.hold(lane, tokens, len(tokens) if extent is None else extent)
        if kept:
            self.prompts[lane] = whole
        self._free.append(lane)

    def cached_tokens(self) -> int:
        """Tokens held by free lanes: the prompt cache (busy lanes are counted by their sequences)."""
        return sum(len(self.contents[lane]) for lane in self._free)


def reusable_prefix(held: Sequence[int], extent: int, prompt: Sequence[int], grid: int) -> int:
    """Leading tokens of ``prompt`` that tokens ``held`` (the first ``extent`` on the grid) can give it.

    The shared prefix, within the extent, less the one prompt token sampling needs, in whole grid chunks.
    """
    return grid_extent(min(common_prefix_len(held, prompt), extent, len(prompt) - 1), grid)


def grid_extent(n_tokens: int, grid: int) -> int:
    """How many of ``n_tokens`` leading tokens full grid chunks of ``grid`` cover; the rest is a prompt's tail."""
    return n_tokens // grid * grid


ROW_GROUP = 4
"""llama.cpp's repacked CPU matmuls compute rows in groups of 4 and the last ``rows % 4`` of a batch one by one,
in another order of sums: a row's logits then depend on where it sits in a batch. A prompt's tail padded to
a multiple of 4 rows sits in whole groups wherever it goes (``benchmarks/determinism_probe.py``, ``tails``)."""


def tail_rows(n_tail: int, grid: int) -> int:
    """How many batch rows a prompt tail of ``n_tail`` tokens is decoded in: padded to whole ``ROW_GROUP``s.

    Padded as far as a whole grid chunk, it is decoded as one (``grid`` rows, with the grid chunks).
    """
    return min(-(-n_tail // ROW_GROUP) * ROW_GROUP, grid)
