"""PrefillBudget: how many prompt tokens a step may add while other sequences decode, measured online."""

from __future__ import annotations

_ALPHA = 0.2


def _ema(old: float | None, new: float) -> float:
    return new if old is None else old + _ALPHA * (new - old)


class PrefillBudget:
    """Sizes each step's prompt chunk so running streams stall at most ``stall`` times a decode-only step.

    A step's time is about (decode-only time for d sequences) + (prompt tokens x cost per prompt
    token); both are learned from the steps the engine runs (moving averages), so the budget adapts
    to the model, the machine and the number of running streams. With no stream decoding, a new
    prompt gets the whole batch (``ceiling``); ``floor`` keeps a prompt moving under heavy load.
    """

    def __init__(self, stall: float, *, floor: int = 8, ceiling: int = 512, initial: int = 32) -> None:
        self.stall = stall
        self.floor = min(floor, ceiling)
        self.ceiling = ceiling
        self.initial = min(initial, ceiling)
        self._decode: dict[int, float] = {}
        self._per_token: float | None = None

    def tokens(self, n_decoding: int) -> int:
        """Prompt tokens the next step may carry beside ``n_decoding`` decode tokens."""
        if n_decoding == 0:
            return self.ceiling
        base = self.decode_time(n_decoding)
        if base is None or not self._per_token:
            return self.initial
        allowed = int((self.stall - 1.0) * base / self._per_token)
        return max(self.floor, min(self.ceiling, allowed))

    def observe(self, n_decoding: int, n_prompt: int, seconds: float) -> None:
        """Learn from one step that decoded ``n_decoding`` sequences and ``n_prompt`` prompt tokens."""
        if n_prompt == 0:
            if n_decoding:
                self._decode[n_decoding] = _ema(self._decode.get(n_decoding), seconds)
            return
        base = self.decode_time(n_decoding) if n_decoding else 0.0
        if base is None:
            return
        self._per_token = _ema(self._per_token, max(seconds - base, 0.0) / n_prompt)

    def decode_time(self, n_decoding: int) -> float | None:
        """Estimated decode-only step time for ``n_decoding`` sequences, from the nearest size seen."""
        if n_decoding in self._decode:
            return self._decode[n_decoding]
        if not self._decode:
            return None
        nearest = min(self._decode, key=lambda n: abs(n - n_decoding))
        return self._decode[nearest] * n_decoding / nearest
