"""LanePool: the KV lanes (llama.cpp seq_ids), what each holds, and prompt-prefix reuse across requests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

COPY_MIN_TOKENS = 8
"""A prefix held by another lane is copied only when it saves at least this many prompt tokens (a copy
moves the whole lane, a few ms; reading a prompt token costs a few ms on a 2-core CPU)."""


def common_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading token ids ``a`` and ``b`` share."""
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class Lease(NamedTuple):
    """A lane taken for a prompt: ``keep`` leading prompt tokens are reused, copied first from ``source`` if set."""

    lane: int
    keep: int
    source: int | None = None


class LanePool:
    """Hands out free lanes, preferring the one whose cached tokens save the most work for a prompt.

    A released lane keeps its tokens (the prompt cache, the common multi-turn chat case). Taking a
    lane reuses its shared prefix and discards the rest, so each free lane scores
    ``reused - discarded``: a conversation's next turn goes back to its own lane, while a new
    conversation that only shares a system prompt takes an empty or least useful lane instead of
    wiping another conversation's history. Ties go to the least recently released lane. When some
    other lane, free or busy, holds a longer prefix (a shared system prompt, a repeated prompt), the
    lease names it as ``source``: its KV memory is copied rather than the prefix read again.
    """

    def __init__(self, n_lanes: int) -> None:
        self.contents: list[list[int]] = [[] for _ in range(n_lanes)]
        self._free: list[int] = list(range(n_lanes))

    @property
    def num_free(self) -> int:
        """Lanes not held by a running sequence."""
        return len(self._free)

    def acquire(self, prompt: Sequence[int]) -> Lease:
        """Take the best free lane for ``prompt``, saying how many leading prompt tokens it will hold.

        At least one prompt token is always left to decode, since sampling needs its logits.
        """
        shared = [min(common_prefix_len(tokens, prompt), len(prompt) - 1) for tokens in self.contents]
        best = max(self._free, key=lambda lane: (2 * shared[lane] - len(self.contents[lane]), -self._free.index(lane)))
        self._free.remove(best)
        source = max(range(len(self.contents)), key=lambda lane: shared[lane])
        if source != best and shared[source] - shared[best] >= COPY_MIN_TOKENS:
            lease = Lease(best, shared[source], source)
            self.contents[best] = list(prompt[: lease.keep])
        else:
            lease = Lease(best, shared[best])
            self.contents[best] = self.contents[best][: lease.keep]
        return lease

    def release(self, lane: int, tokens: list[int]) -> None:
        """Give a lane back, remembering the tokens its KV memory now holds."""
        self.contents[lane] = tokens
        self._free.append(lane)

    def cached_tokens(self) -> int:
        """Tokens held by free lanes: the prompt cache (busy lanes are counted by their sequences)."""
        return sum(len(self.contents[lane]) for lane in self._free)
