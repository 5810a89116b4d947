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
    """Hands out free lanes, preferring the one whose cached tokens share the longest prefix with a prompt.

    A released lane keeps its tokens (the prompt cache, the common multi-turn chat case); ties go to
    the least recently released lane, so recent conversations stay cached longest.
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
        best, best_len = self._free[0], -1
        for lane in self._free:
            length = common_prefix_len(self.contents[lane], prompt)
            if length > best_len:
                best, best_len = lane, length
        self._free.remove(best)
        keep = min(best_len, len(prompt) - 1)
        self.contents[best] = self.contents[best][:keep]
        return best, keep

    def release(self, lane: int, tokens: list[int]) -> None:
        """Give a lane back, remembering the tokens its KV memory now holds."""
        self.contents[lane] = tokens
        self._free.append(lane)

    def cached_tokens(self) -> int:
        """Tokens held by free lanes (the prompt cache); a busy lane counts only its reused prefix."""
        return sum(len(tokens) for tokens in self.contents)
