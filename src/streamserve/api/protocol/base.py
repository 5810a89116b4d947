"""What every wire model shares: the base class, common field types, usage and the error envelope.

Field order follows OpenAI's API reference: https://platform.openai.com/docs/api-reference
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

FinishReason = Literal["stop", "length", "tool_calls", "content_filter"]
"""Why a choice ended: ``stop``, ``length``, ``tool_calls``, or (moderation) ``content_filter``."""

Penalty = Annotated[float, Field(ge=-2.0, le=2.0)]
StopList = Annotated[list[str], Field(max_length=4)]
LogitBias = Annotated[dict[str, Annotated[float, Field(ge=-100.0, le=100.0)]], Field(max_length=300)]
"""Token id -> bias; at most 300 entries, as OpenAI allows."""
KeepAlive = str | float | None
"""Ollama's ``keep_alive`` (a streamserve extension): how long the model stays loaded after this request,
a duration (``"10m"``, seconds as a number), ``0`` to unload it at once, negative to keep it."""


class OpenAIBaseModel(BaseModel):
    """Base of every wire model.

    Unknown fields are ignored, not rejected: clients and tools send vendor extras and newer
    OpenAI fields, and a strict server would break them. Parameters the server cannot honour are
    named fields that the layer above rejects with a clear 400, never silently dropped extras.
    """

    model_config = ConfigDict(extra="ignore")


class StreamOptions(OpenAIBaseModel):
    """``stream_options``: only valid with ``stream: true``."""

    include_usage: bool | None = None
    include_obfuscation: bool | None = None


class PromptTokensDetails(OpenAIBaseModel):
    """Breakdown of the prompt tokens: how many came from the prefix cache."""

    cached_tokens: int = 0


class CompletionTokensDetails(OpenAIBaseModel):
    """Sent when the request carried a ``prediction``: its draft tokens the model accepted and rejected."""

    accepted_prediction_tokens: int = 0
    rejected_prediction_tokens: int = 0


class Usage(OpenAIBaseModel):
    """Token counts of one request; ``completion_tokens`` is summed over all choices."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails | None = None
    completion_tokens_details: CompletionTokensDetails | None = None


class ErrorBody(OpenAIBaseModel):
    """OpenAI's error object; all four keys are always sent, ``param`` and ``code`` may be null."""

    message: str
    type: str
    param: str | None
    code: str | None


class ErrorResponse(OpenAIBaseModel):
    """The error envelope: ``{"error": {...}}``, for non-2xx responses and mid-stream error events."""

    error: ErrorBody
