"""Engine-side sampling parameters: what one sequence's sampler chain is built from."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class SamplingParams:
    """How to pick each next token of one sequence, and when to stop.

    ``logprobs`` is None when no log-probabilities are wanted; otherwise the number of
    alternatives (top logprobs, 0..20) to report beside each sampled token's own logprob.
    ``temperature == 0`` means greedy. ``seed`` None means a fresh random seed.
    ``stop_token_ids`` end the sequence like an end-of-generation token (a chat format's turn markers).
    ``grammar`` (llguidance's Lark or JSON grammar text) constrains every token to it; end of
    generation is allowed only once it is complete, and the sequence ends as soon as nothing else can follow.
    """

    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    seed: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    repetition_penalty: float = 1.0
    logit_bias: tuple[tuple[int, float], ...] = field(default=())
    logprobs: int | None = None
    ignore_eos: bool = False
    stop_token_ids: frozenset[int] = frozenset()
    grammar: str | None = None
    prediction: tuple[int, ...] | None = None
