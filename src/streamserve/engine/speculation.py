"""Speculator: which draft each decoding sequence gets this step, and how long, from acceptance and cost.

A sequence with a predicted output drafts from it; otherwise, with ``--speculative auto`` (the default) or
``ngram``, from n-grams of its prompt and output. The draft length is chosen per sequence and step to
maximise the expected tokens per unit of decode time (``best_length``): from the sequence's measured
acceptance (each draft token taken as accepted with one probability, estimated from its verifications so
far, recent ones weighing more, and from steps where a draft was proposed but not taken: whether the
model's token was the draft's first, a free observation) and from what a call of ``k + 1`` rows costs,
measured at startup for a few sizes (``CallCost``, by ``verify_probe``). The probe also finds how many
rows a verification may hold and still give one-token steps' logits bit for bit, at the start of a lane
and hundreds of positions in: within that the output is the same with and without drafts; beyond it,
as for any batched step, it is the model's up to the kernels' order of sums. ``auto`` keeps n-gram
drafts within it (with several threads, on this llama.cpp build, that is none: a lone one-row decode
splits its attention between threads past 256 positions), ``ngram`` drafts whatever pays, and a
prediction, which a request asks for, is drafted in every mode. When no length pays, nothing is drafted,
but the proposal's first token is still checked against the model's, so a sequence that starts
repeating itself starts drafting again. No drafts when the step is busy (batching several decoding
sequences already fills it), under ``--deterministic``, or past the sequence's token limit.
A constrained sequence drafts the tokens its grammar forces when there are some, and its draft is cut
at the first token its grammar would refuse (both checked without advancing the matcher).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from streamserve.engine.drafts import NgramDrafter, PredictionDrafter
from streamserve.engine.sequence import Sequence
from streamserve.engine.verify_probe import CallCost, VerifyProbe

SpeculativeMode = Literal["off", "auto", "ngram"]

DRAFT_MAX = 32
"""Most tokens drafted in one step, from a prediction or n-grams (llama.cpp's ``--draft-max`` is 16): on a
CPU a call of 33 rows costs 10 to 18 one-row decodes against 7.6 to 9.3 for 17 (docs/speculation.md), so
long drafts are where speculation pays; the cost model chooses fewer unless nearly every token is accepted."""

BUSY = 4
"""From this many decoding sequences on, a step is busy: batching fills it and nothing is drafted."""

STEP_ROWS = BUSY + DRAFT_MAX
"""Most rows of logits a step with a draft computes: a step's drafts share ``DRAFT_MAX`` tokens, so at most
``BUSY - 1`` decoding rows and one draft's. A memory estimate counts this many rows of vocabulary floats."""

PRIORS = {"prediction": 0.9, "ngram": 0.6}
"""Acceptance assumed before a sequence's first verification, per draft source."""

PRIOR_WEIGHT = 4.0
"""How many draft tokens' worth of evidence the prior counts for."""

DECAY = 0.9
"""Each verification keeps this share of the evidence before it: recent drafts weigh more."""

MIN_GAIN = 1.05
"""A draft must promise this many times the tokens per unit of time of a plain step (its overheads)."""

DEFAULT_COST = CallCost.linear(0.4)
"""What a call of several rows costs until the startup probe has measured it."""


def expected_tokens(alpha: float, k: int) -> float:
    """Tokens one verification of a ``k``-token draft emits on average, each accepted with ``alpha``."""
    if alpha >= 1.0:
        return float(k + 1)
    return (1.0 - alpha ** (k + 1)) / (1.0 - alpha)


def best_length(alpha: float, cost: CallCost, limit: int) -> int:
    """The draft length (0 to ``limit``) with the most expected tokens per unit of decode time."""
    best, best_rate = 0, MIN_GAIN
    for k in range(1, limit + 1):
        rate = expected_tokens(alpha, k) / cost(k + 1)
        if rate > best_rate:
            best, best_rate = k, rate
    return best


class Speculator:
    """Proposes each decoding sequence's draft for a step (``draft``) and learns from what was accepted."""

    def __init__(self, mode: SpeculativeMode = "off", *, deterministic: bool = False, max_model_len: int,
                 is_eog: Callable[[int], bool] = lambda token: False, cost: CallCost = DEFAULT_COST) -> None:
        self.mode = mode
        self.enabled = not deterministic
        self.max_model_len = max_model_len
        self.is_eog = is_eog
        self.cost = cost
        self.exact_rows = DRAFT_MAX + 1

    @property
    def ngram(self) -> bool:
        """Whether sequences without a prediction draft from n-grams: ``ngram``, or ``auto`` where a verification of
        two rows or more gives one-token steps' logits."""
        return self.enabled and (self.mode == "ngram" or (self.mode == "auto" and self.exact_rows > 1))

    def calibrate(self, probe: VerifyProbe) -> None:
        """Size drafts to what calls cost on this machine; record how many rows a verification may hold and
        still give one-token steps' logits, which is what the bit-for-bit guarantee covers."""
        self.cost = probe.cost
        self.exact_rows = probe.exact_rows

    def draft(self, seq: Sequence, n_decoding: int, room: int) -> list[int]:
        """The draft to verify after ``seq``'s last token this step (at most ``room`` tokens); often none.

        When a draft is proposed but no length of it pays, its first token is kept as ``seq.shadow_guess``
        for this step's ``observe`` to check against the model's: acceptance keeps being measured without
        drafting.
        """
        if not self.enabled or n_decoding >= BUSY or room <= 0:
            return []
        if seq.drafter is None:
            if seq.params.prediction:
                seq.drafter = PredictionDrafter(seq.params.prediction)
            elif self.ngram:
                seq.drafter = NgramDrafter(seq.prompt_ids)
            else:
                return []
        # The verified rows emit at most k + 1 tokens: stay within max_tokens and the context.
        limit = min(DRAFT_MAX, room, seq.params.max_tokens - len(seq.output_ids) - 1,
                    self.max_model_len - seq.num_tokens - 1)
        if self.mode == "auto" and not seq.params.prediction:
            limit = min(limit, self.exact_rows - 1)
        if limit <= 0:
            return []
        draft = seq.drafter.propose(seq.output_ids, limit)
        if seq.constraint is not None:  # what the grammar forces is a draft that cannot be wrong
            draft = seq.constraint.forced()[:limit] or draft
        stops = seq.params.stop_token_ids
        for i, token in enumerate(draft):  # a draft never ends the sequence: end-of-generation is the model's call
            if token in stops or self.is_eog(token):
                draft = draft[:i]
                break
        if draft and seq.constraint is not None:
            draft = draft[: seq.constraint.valid_prefix(draft)]
        if not draft:
            return []
        k = best_length(self.acceptance(seq), self.cost, len(draft))
        if k == 0:
            seq.shadow_guess = draft[0]
        return draft[:k]

    def acceptance(self, seq: Sequence) -> float:
        """The estimated chance that ``seq``'s next draft token is accepted: its prior and its recent verifications."""
        prior = PRIORS["prediction" if seq.params.prediction else "ngram"]
        hits, misses = seq.draft_evidence
        return (hits + prior * PRIOR_WEIGHT) / (hits + misses + PRIOR_WEIGHT)

    def observe(self, seq: Sequence, drafted: int, accepted: int, drawn: int) -> None:
        """Learn from one step of ``seq``: of ``drafted`` draft tokens, ``accepted`` agreed, then one disagreed
        unless all did; with no draft, whether ``drawn`` (the step's first token) was its ``shadow_guess``,
        which is used up here: a step that did not consult ``draft`` (a prompt being read) has none."""
        guess, seq.shadow_guess = seq.shadow_guess, None
        if drafted == 0:
            if guess is None:
                return
            drafted, accepted = 1, int(drawn == guess)
        hits, misses = seq.draft_evidence
        seq.draft_evidence = (hits * DECAY + accepted, misses * DECAY + (accepted < drafted))
