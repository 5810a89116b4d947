"""What one step decodes for a sequence (``Work``), and what it draws for it (``Sampled``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from streamserve.engine.lanes import Logits
from streamserve.engine.sequence import Sequence

WorkKind = Literal["decode", "verify", "grid", "tail", "cached"]
"""A decode token; a decode token followed by a draft to verify (every row sampled, in a call of its own);
whole grid chunks of a prompt; a prompt's tail, in one piece; or nothing to decode: the whole prompt was
cached, and its first token is drawn from its saved logits."""


@dataclass(frozen=True, slots=True)
class Work:
    """Tokens of one sequence to decode this step, from position ``start``; ``sample`` wants the last one's logits."""

    seq: Sequence
    tokens: list[int]
    start: int
    sample: bool
    kind: WorkKind

    @property
    def draft(self) -> list[int]:
        """The draft tokens a ``verify`` work checks (after the sequence's last token); none otherwise."""
        return self.tokens[1:] if self.kind == "verify" else []


@dataclass(frozen=True, slots=True)
class Sampled:
    """The token drawn for one sequence this step, with its logprobs when the sequence asked for them.

    For a constrained sequence, ``complete`` says its grammar is finished with this token, and ``error``
    (with ``token_id`` -1) that its matcher failed: that sequence must fail, the others go on.
    A ``verify`` work gives several, in order: each draft token the model agreed with (``accepted``),
    then the token drawn where it disagreed or after the whole draft.
    ``prompt_logits`` is set when this step decoded the last token of the prompt: its logits, as decoded,
    which the prompt cache keeps so that the same prompt again draws from them without a prefill.
    """

    seq: Sequence
    token_id: int
    logprob: float | None = None
    top_logprobs: tuple[tuple[int, float], ...] | None = None
    complete: bool = False
    error: str | None = None
    prompt_logits: Logits | None = None
    accepted: bool = False
