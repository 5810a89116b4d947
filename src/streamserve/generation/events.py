"""Neutral generation events, shared by chat, completions and responses: text, tool calls, finish, moderation,
usage.

``generation.generation`` turns engine token events into these; ``formats.completions`` renders
them in the chat or the completion shape. Nothing here knows the wire format.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from streamserve.moderation import ModerationResult


@dataclass(frozen=True, slots=True)
class TopLogprob:
    """One alternative token at a position: its text, logprob and raw UTF-8 bytes."""

    token: str
    logprob: float
    bytes: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class LogprobEntry:
    """The sampled token at one position, with its alternatives.

    ``offset`` is the character offset in the choice's text where this token's text begins
    (the legacy completions ``text_offset``).
    """

    token: str
    logprob: float
    bytes: tuple[int, ...]
    top: tuple[TopLogprob, ...]
    offset: int


@dataclass(frozen=True, slots=True)
class TextDelta:
    """New text for choice ``index``; ``logprobs`` lists exactly the tokens whose last byte it carries."""

    index: int
    text: str
    logprobs: tuple[LogprobEntry, ...] | None = None


@dataclass(frozen=True, slots=True)
class ToolCallStart:
    """Choice ``index`` opens tool call number ``call`` (0, 1, ... in order): its id and function name."""

    index: int
    call: int
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """The next piece of call ``call``'s arguments, exactly as the model wrote them (never re-serialized)."""

    index: int
    call: int
    arguments: str


@dataclass(frozen=True, slots=True)
class ToolCallEnd:
    """Call ``call`` is complete: its whole arguments text (the join of its deltas). A call cut short has none."""

    index: int
    call: int
    id: str
    name: str
    arguments: str


ToolCallEvent = ToolCallStart | ToolCallDelta | ToolCallEnd

FinishReason = Literal["stop", "length", "tool_calls", "content_filter"]


@dataclass(frozen=True, slots=True)
class Finish:
    """Choice ``index`` is complete; always its last event. ``tool_calls``: it ended after calling tools.

    ``stop`` is the stop string that ended it (a request's own or the template's), when one did.
    """

    index: int
    reason: FinishReason
    stop: str | None = None


@dataclass(frozen=True, slots=True)
class Annotation:
    """Async moderation of choice ``index`` checked characters ``[start, end)`` of its text.

    ``checked`` is how far the choice's text is fully moderated; it never decreases (Azure's
    ``content_filter_offsets.check_offset``).
    """

    index: int
    result: ModerationResult
    start: int
    end: int
    checked: int


@dataclass(frozen=True, slots=True)
class ModerationScores:
    """The request's moderation results: its input and each choice's whole output (OpenAI's ``moderation``)."""

    model: str
    input: tuple[ModerationResult, ...]
    output: tuple[ModerationResult, ...]


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts for the whole request, after every choice has finished."""

    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0
    accepted_prediction_tokens: int | None = None  # None: the request had no prediction
    rejected_prediction_tokens: int | None = None

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens


Event = TextDelta | ToolCallStart | ToolCallDelta | ToolCallEnd | Finish | Annotation | ModerationScores | Usage
