"""PrefillBudget: how many prompt tokens a step may carry, bounded in time and by the decoding streams' pace."""

from __future__ import annotations

_ALPHA = 0.2


def _ema(old: float | None, new: float) -> float:
    return new if old is None else old + _ALPHA * (new - old)


class PrefillBudget:
    """Sizes each step's prompt tokens so that no step runs long, from costs measured online.

    A step costs about ``base + n x per_token``: ``base`` is the decode-only step time for the d
    sequences decoding (a moving average per d) or, with none decoding, the step's fixed overhead
    (the decode-only time of the fewest sequences seen; the engine seeds it with its warm-up
    decode); ``per_token`` is a moving average of what each prompt token adds. So the budget adapts
    to the model, the machine's load and the number of running streams. Two bounds:

    - ``step_time``: a step's prompt tokens take at most about this many seconds, whether or not
      any stream decodes. A request arriving while a long prompt is read therefore waits about one
      such step before its own prompt is read (``scheduler.prompt_shares`` gives it priority). When
      the fixed overhead alone exceeds ``step_time`` (an overloaded machine), prompt tokens may take
      as long as the overhead instead: smaller steps would not be shorter, only fewer tokens each.
    - ``stall``: while sequences decode, the step takes at most ``stall`` times a decode-only step,
      so running streams keep their pace.

    ``floor`` keeps a prompt moving under heavy load; ``ceiling`` is the batch size.
    """

    def __init__(self, stall: float, *, step_time: float = 0.5, floor: int = 8, ceiling: int = 512,
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
        base = self.decode_time(n_decoding) if n_decoding else self.overhead()
        if not self._per_token or (n_decoding and base is None):
            return self.initial
        base = base or 0.0
        allowed = max(self.step_time - base, base) / self._per_token
        if n_decoding:
            allowed = min(allowed, (self.stall - 1.0) * base / self._per_token)
        return max(self.floor, min(self.ceiling, int(allowed)))

    def observe(self, n_decoding: int, n_prompt: int, seconds: float) -> None:
        """Learn from one step that decoded ``n_decoding`` sequences and ``n_prompt`` prompt tokens."""
        if n_prompt == 0:
            if n_decoding:
                self._decode[n_decoding] = _ema(self._decode.get(n_decoding), seconds)
            return
        base = self.decode_time(n_decoding) if n_decoding else self.overhead()
        if n_decoding and base is None:
            return
        self._per_token = _ema(self._per_token, max(seconds - (base or 0.0), 0.0) / n_prompt)

    def overhead(self) -> float | None:
        """A step's fixed cost, estimated by the decode-only time of the fewest sequences seen (None: none yet)."""
        return self._decode[min(self._decode)] if self._decode else None

    def decode_time(self, n_decoding: int) -> float | None:
        """Estimated decode-only step time for ``n_decoding`` sequences, from the nearest size seen."""
        if n_decoding in self._decode:
            return self._decode[n_decoding]
        if not self._decode:
            return None
        nearest = min(self._decode, key=lambda n: abs(n - n_decoding))
        return self._decode[nearest] * n_decoding / nearest
