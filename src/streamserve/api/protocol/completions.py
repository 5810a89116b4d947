"""``/v1/completions`` (legacy): the request, the response and the streamed chunk.

https://platform.openai.com/docs/api-reference/completions
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from streamserve.api.protocol.base import (
    FinishReason,
    KeepAlive,
    LogitBias,
    OpenAIBaseModel,
    Penalty,
    StopList,
    StreamOptions,
    Usage,
)
from streamserve.api.protocol.moderations import ModerationOptions


class CompletionRequest(OpenAIBaseModel):
    """``POST /v1/completions`` (legacy).

    ``max_tokens`` may be 0 (with ``echo``, OpenAI returns just the prompt). ``top_k``, ``min_p``
    and ``repetition_penalty`` are streamserve extensions.
    """

    model: str
    prompt: str | list[str] | list[int] | list[list[int]]
    best_of: int | None = Field(default=None, ge=1)
    echo: bool | None = None
    frequency_penalty: Penalty | None = None
    logit_bias: LogitBias | None = None
    logprobs: int | None = Field(default=None, ge=0, le=5)
    max_tokens: int | None = Field(default=None, ge=0)
    n: int | None = Field(default=1, ge=1)
    presence_penalty: Penalty | None = None
    seed: int | None = None
    stop: str | StopList | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    suffix: str | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, ge=0.0, le=1.0)
    user: str | None = None
    moderation: ModerationOptions | None = None
    # Extensions (not in OpenAI's API).
    top_k: int | None = Field(default=None, ge=0)
    min_p: float | None = Field(default=None, ge=0.0, le=1.0)
    repetition_penalty: float | None = Field(default=None, gt=0.0)
    keep_alive: KeepAlive = None


class CompletionLogprobs(OpenAIBaseModel):
    """Legacy completions logprobs: parallel lists, one entry per token."""

    tokens: list[str]
    token_logprobs: list[float | None]
    top_logprobs: list[dict[str, float]] | None = None
    text_offset: list[int]


class CompletionChoice(OpenAIBaseModel):
    """One choice of a non-streamed legacy completion."""

    text: str
    index: int
    logprobs: CompletionLogprobs | None = None
    finish_reason: FinishReason


class Completion(OpenAIBaseModel):
    """A non-streamed legacy completion (``object: "text_completion"``)."""

    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    system_fingerprint: str | None = None
    choices: list[CompletionChoice]
    usage: Usage


class CompletionChunkChoice(OpenAIBaseModel):
    """One choice of a streamed legacy completion chunk; ``finish_reason`` is null until the end."""

    text: str
    index: int
    logprobs: CompletionLogprobs | None = None
    finish_reason: FinishReason | None = None


class CompletionChunk(OpenAIBaseModel):
    """One streamed legacy completion event; its ``object`` is ``text_completion`` too.

    ``usage`` follows the chat chunk's rule.
    """

    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    system_fingerprint: str | None = None
    choices: list[CompletionChunkChoice]
    usage: Usage | None = None
