"""What the engine emits for one sequence: one TokenEvent per generated token, one SequenceOutput per step."""

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


@dataclass(frozen=True, slots=True)
class SequenceOutput:
    """What one step produced for the sequence numbered ``number``: its token events, or the error that ended it.

    ``cached_tokens`` and ``queue_time`` (seconds it waited for a lane) are known from its first output on.
    ``drafted`` and ``accepted`` count this step's speculative draft tokens and those the model agreed with.
    """

    number: int
    events: tuple[TokenEvent, ...] = ()
    error: Exception | None = None
    cached_tokens: int = 0
    queue_time: float | None = None
    drafted: int = 0
    accepted: int = 0

    @property
    def done(self) -> bool:
        """Whether this is the sequence's last output."""
        return self.error is not None or (bool(self.events) and self.events[-1].finish is not None)
