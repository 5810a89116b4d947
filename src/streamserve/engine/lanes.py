"""LanePool: the KV lanes (llama.cpp seq_ids), what each holds, and prompt-prefix reuse across requests."""

from __future__ import annotations

from collections.abc import Sequence


def common_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading token ids ``a`` and ``b`` share."""
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class LanePool:
    """Hands out free lanes, preferring the one whose cached tokens save the most work for a prompt.

    A released lane keeps its tokens (the prompt cache, the common multi-turn chat case). Taking a
    lane reuses its shared prefix and discards the rest, so each free lane scores
    ``reused - discarded``: a conversation's next turn goes back to its own lane, while a new
    conversation that only shares a system prompt takes an empty or least useful lane instead of
    wiping another conversation's history. Ties go to the least recently released lane.
    """

    def __init__(self, n_lanes: int) -> None:
        self.contents: list[list[int]] = [[] for _ in range(n_lanes)]
        self._free: list[int] = list(range(n_lanes))

    @property
    def num_free(self) -> int:
        """Lanes not held by a running sequence."""
        return len(self._free)

    def acquire(self, prompt: Sequence[int]) -> tuple[int, int]:
        """Take the best free lane for ``prompt``; return it and how many leading prompt tokens it already holds.

        At least one prompt token is always left to decode, since sampling needs its logits.
        """
        best, best_len, best_score = self._free[0], 0, None
        for lane in self._free:
            length = min(common_prefix_len(self.contents[lane], prompt), len(prompt) - 1)
            score = 2 * length - len(self.contents[lane])
            if best_score is None or score > best_score:
                best, best_len, best_score = lane, length, score
        self._free.remove(best)
        keep = best_len
        self.contents[best] = self.contents[best][:keep]
        return best, keep

    def release(self, lane: int, tokens: list[int]) -> None:
        """Give a lane back, remembering the tokens its KV memory now holds."""
        self.contents[lane] = tokens
        self._free.append(lane)

    def cached_tokens(self) -> int:
        """Tokens held by free lanes (the prompt cache); a busy lane counts only its reused prefix."""
        return sum(len(tokens) for tokens in self.contents)
