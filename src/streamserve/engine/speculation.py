"""Speculator: which draft each decoding sequence gets this step, and how long, from acceptance and cost.

A sequence with a predicted output drafts from it; otherwise, with ``--speculative ngram``, from n-grams
of its prompt and output. The draft length is chosen per sequence and step to maximise the expected
tokens per unit of decode time (``best_length``): from the sequence's measured acceptance (each draft
token taken as accepted with one probability, estimated from its verifications so far, recent ones
weighing more) and from the cost of one more row in a decode call, measured at startup
(``row_cost``, by ``verify_probe``, which also finds how many rows a verification may hold and still
give one-token steps' logits bit for bit: the output is then the same with and without drafts; beyond
that, as for any batched step, it is the model's up to the kernels' order of sums). When no length
pays, nothing is drafted; the estimate then drifts back to its prior step by step, so drafting is
tried again later. No drafts when the step is busy (batching several decoding sequences already fills
it), under ``--deterministic``, or past the sequence's token limit.
A constrained sequence drafts the tokens its grammar forces when there are some, and its draft is cut
at the first token its grammar would refuse (both checked without advancing the matcher).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from streamserve.engine.drafts import NgramDrafter, PredictionDrafter
from streamserve.engine.sequence import Sequence
from streamserve.engine.verify_probe import VerifyProbe

SpeculativeMode = Literal["off", "ngram"]

DRAFT_MAX = 16
"""Most tokens drafted at once, from a prediction or n-grams (llama.cpp's ``--draft-max`` default); the
cost model chooses fewer unless nearly every draft token is accepted."""

BUSY = 4
"""From this many decoding sequences on, a step is busy: batching fills it and nothing is drafted."""

PRIORS = {"prediction": 0.9, "ngram": 0.6}
"""Acceptance assumed before a sequence's first verification, per draft source."""

PRIOR_WEIGHT = 4.0
"""How many draft tokens' worth of evidence the prior counts for."""

DECAY = 0.9
"""Each verification keeps this share of the evidence before it: recent drafts weigh more."""

FADE = 0.98
"""Each step without a draft keeps this share: slow enough that a sequence whose drafts fail (free prose)
tries again every few dozen steps, not every other one (a failed one-token draft costs a row)."""

MIN_GAIN = 1.05
"""A draft must promise this many times the tokens per unit of time of a plain step (its overheads)."""

DEFAULT_ROW_COST = 0.4
"""One more row's cost relative to a one-row decode, until measured (SmolLM2 on 2 cores: 0.4 to 0.8)."""


def expected_tokens(alpha: float, k: int) -> float:
    """Tokens one verification of a ``k``-token draft emits on average, each accepted with ``alpha``."""
    if alpha >= 1.0:
        return float(k + 1)
    return (1.0 - alpha ** (k + 1)) / (1.0 - alpha)


def best_length(alpha: float, row_cost: float, limit: int) -> int:
    """The draft length (0 to ``limit``) with the most expected tokens per unit of decode time."""
    best, best_rate = 0, MIN_GAIN
    for k in range(1, limit + 1):
        rate = expected_tokens(alpha, k) / (1.0 + row_cost * k)
        if rate > best_rate:
            best, best_rate = k, rate
    return best


class Speculator:
    """Proposes each decoding sequence's draft for a step (``draft``) and learns from what was accepted."""

    def __init__(self, mode: SpeculativeMode = "off", *, deterministic: bool = False, max_model_len: int,
                 is_eog: Callable[[int], bool] = lambda token: False, row_cost: float = DEFAULT_ROW_COST) -> None:
        self.mode = mode
        self.enabled = not deterministic
        self.max_model_len = max_model_len
        self.is_eog = is_eog
        self.row_cost = row_cost
        self.exact_rows = DRAFT_MAX + 1

    def calibrate(self, probe: VerifyProbe) -> None:
        """Size drafts to this machine's cost of a row; record how many rows a verification may hold and
        still give one-token steps' logits, which is what the bit-for-bit guarantee covers."""
        self.row_cost = probe.row_cost
        self.exact_rows = probe.exact_rows

    def draft(self, seq: Sequence, n_decoding: int, room: int) -> list[int]:
        """The draft to verify after ``seq``'s last token this step (at most ``room`` tokens); often none."""
        if not self.enabled or n_decoding >= BUSY or room <= 0:
            return []
        if seq.drafter is None:
            if seq.params.prediction:
                seq.drafter = PredictionDrafter(seq.params.prediction)
            elif self.mode == "ngram":
                seq.drafter = NgramDrafter(seq.prompt_ids)
            else:
                return []
        # The verified rows emit at most k + 1 tokens: stay within max_tokens and the context.
        k = min(best_length(self.acceptance(seq), self.row_cost, DRAFT_MAX), room,
                seq.params.max_tokens - len(seq.output_ids) - 1, self.max_model_len - seq.num_tokens - 1)
        if k <= 0:
            self._forget(seq)
            return []
        draft = seq.drafter.propose(seq.output_ids, k)
        if seq.constraint is not None:  # what the grammar forces is a draft that cannot be wrong
            draft = seq.constraint.forced()[:k] or draft
        stops = seq.params.stop_token_ids
        for i, token in enumerate(draft):  # a draft never ends the sequence: end-of-generation is the model's call
            if token in stops or self.is_eog(token):
                draft = draft[:i]
                break
        if draft and seq.constraint is not None:
            draft = draft[: seq.constraint.valid_prefix(draft)]
        return draft

    def acceptance(self, seq: Sequence) -> float:
        """The estimated chance that ``seq``'s next draft token is accepted: its prior and its recent verifications."""
        prior = PRIORS["prediction" if seq.params.prediction else "ngram"]
        hits, misses = seq.draft_evidence
        return (hits + prior * PRIOR_WEIGHT) / (hits + misses + PRIOR_WEIGHT)

    def observe(self, seq: Sequence, drafted: int, accepted: int) -> None:
        """Learn from one verification: ``accepted`` tokens agreed, then one disagreed unless all did."""
        if drafted == 0:
            return
        hits, misses = seq.draft_evidence
        seq.draft_evidence = (hits * DECAY + accepted, misses * DECAY + (accepted < drafted))

    def _forget(self, seq: Sequence) -> None:
        """A step without a draft: old evidence fades, so a sequence that stopped drafting tries again later."""
        hits, misses = seq.draft_evidence
        seq.draft_evidence = (hits * FADE, misses * FADE)
