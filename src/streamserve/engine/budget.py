"""PrefillBudget: how many prompt tokens a step may carry, bounded in time and by the decoding streams' pace."""

from __future__ import annotations

_ALPHA = 0.2


def _ema(old: float | None, new: float) -> float:
    return new if old is None else old + _ALPHA * (new - old)


class PrefillBudget:
    """Sizes each step's prompt tokens so that no step runs long, measured online.

    Two bounds, both from costs learned from the steps the engine runs (moving averages of the
    decode-only step time for d sequences and of the cost per prompt token), so the budget adapts to
    the model, the machine's load and the number of running streams:

    - ``step_time``: a step's prompt tokens take at most about this many seconds, whether or not
      any stream decodes. A request arriving while a long prompt is read therefore waits about one
      such step before its own prompt is read (``scheduler.prompt_shares`` gives it priority).
    - ``stall``: while sequences decode, the step takes at most ``stall`` times a decode-only step,
      so running streams keep their pace.

    ``floor`` keeps a prompt moving under heavy load; ``ceiling`` is the batch size.
    """

    def __init__(self, stall: float, *, step_time: float = 0.25, floor: int = 8, ceiling: int = 512,
                 initial: int = 32) -> None:
        self.stall = stall
        self.step_time = step_time
        self.floor = min(floor, ceiling)
        self.ceiling = ceiling
        self.initial = min(initial, ceiling)
        self._decode: dict[int, float] = {}
        self._per_token: float | None = None

    def tokens(self, n_decoding: int) -> int:
        """Prompt tokens the next step may carry beside ``n_decoding`` decode tokens."""
        base = self.decode_time(n_decoding) if n_decoding else 0.0
        if base is None or not self._per_token:
            return self.initial
        allowed = self.step_time / self._per_token
        if n_decoding:
            allowed = min(allowed, (self.stall - 1.0) * base / self._per_token)
        return max(self.floor, min(self.ceiling, int(allowed)))

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
