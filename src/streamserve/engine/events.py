"""What the engine emits for one sequence: one TokenEvent per generated token."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class FinishReason(enum.Enum):
    """Why the engine stopped a sequence: an end-of-generation token, or a token limit."""

    EOG = "eog"
    LENGTH = "length"


@dataclass(frozen=True, slots=True)
class TokenEvent:
    """One generated token of one sequence.

    ``logprob`` and ``top_logprobs`` (token id, logprob pairs, best first) are set only when
    the sequence asked for logprobs. ``finish`` is set on the sequence's last event; an
    end-of-generation token is reported with ``finish=EOG`` and is not part of the text.
    """

    token_id: int
    logprob: float | None = None
    top_logprobs: tuple[tuple[int, float], ...] | None = None
    finish: FinishReason | None = None
