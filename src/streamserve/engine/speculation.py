"""Speculator: which draft each decoding sequence gets this step, and how long, from its acceptance so far.

A sequence with a predicted output drafts from it; otherwise, with ``--speculative ngram``, from n-grams
of its prompt and output. The draft length adapts per sequence: it grows while drafts are accepted
whole and shrinks to what was accepted after a rejection. No drafts when the step is busy (batching
several decoding sequences already fills it), under ``--deterministic``, or past the sequence's token
limit. A constrained sequence's draft is cut at the first token its grammar would refuse (checked
without advancing the matcher).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from streamserve.engine.drafts import NgramDrafter, PredictionDrafter
from streamserve.engine.sequence import Sequence

SpeculativeMode = Literal["off", "ngram"]

PREDICTION_MAX = 16
"""Most tokens drafted at once from a prediction (llama.cpp's ``--draft-max`` default)."""

NGRAM_MAX = 8
"""Most tokens drafted at once from n-grams: their acceptance is lower, and a rejected row costs time."""

BUSY = 4
"""From this many decoding sequences on, a step is busy: batching fills it and nothing is drafted."""


class Speculator:
    """Proposes each decoding sequence's draft for a step (``draft``) and learns from what was accepted."""

    def __init__(self, mode: SpeculativeMode = "off", *, deterministic: bool = False, max_model_len: int,
                 is_eog: Callable[[int], bool] = lambda token: False) -> None:
        self.mode = mode
        self.enabled = not deterministic
        self.max_model_len = max_model_len
        self.is_eog = is_eog

    def draft(self, seq: Sequence, n_decoding: int, room: int) -> list[int]:
        """The draft to verify after ``seq``'s last token this step (at most ``room`` tokens); often none."""
        if not self.enabled or n_decoding >= BUSY or room <= 0:
            return []
        if seq.drafter is None:
            if seq.params.prediction:
                seq.drafter = PredictionDrafter(seq.params.prediction)
                seq.draft_len = PREDICTION_MAX
            elif self.mode == "ngram":
                seq.drafter = NgramDrafter(seq.prompt_ids)
                seq.draft_len = NGRAM_MAX // 2
            else:
                return []
        # The verified rows emit at most k + 1 tokens: stay within max_tokens and the context.
        k = min(seq.draft_len, room, seq.params.max_tokens - len(seq.output_ids) - 1,
                self.max_model_len - seq.num_tokens - 1)
        if k <= 0:
            return []
        draft = seq.drafter.propose(seq.output_ids, k)
        stops = seq.params.stop_token_ids
        for i, token in enumerate(draft):  # a draft never ends the sequence: end-of-generation is the model's call
            if token in stops or self.is_eog(token):
                draft = draft[:i]
                break
        if draft and seq.constraint is not None:
            draft = draft[: seq.constraint.valid_prefix(draft)]
        return draft

    def observe(self, seq: Sequence, drafted: int, accepted: int) -> None:
        """Adapt ``seq``'s draft length to one verification: longer after a whole draft, shorter after a miss."""
        if drafted == 0:
            return
        limit = PREDICTION_MAX if seq.params.prediction else NGRAM_MAX
        if accepted == drafted:
            seq.draft_len = min(limit, 2 * seq.draft_len)
        else:
            seq.draft_len = max(1, accepted + 1)
