"""The OpenAI wire format as pydantic models: requests, responses, chunks, usage, errors.

Only models live here; the request → sampling-parameters conversion is in ``streaming/params.py``
and the response dicts are built by ``streaming/chunks.py``. Response models document the schema
(``/docs``) and validate those dicts in tests. Their wire form keeps exactly the keys that were set:
``Model.model_validate(d).model_dump(exclude_unset=True) == d``, which is how a chat delta can be
``{}`` while the chunk around it carries explicit nulls.

Field order follows OpenAI's API reference:
https://platform.openai.com/docs/api-reference/chat and
https://platform.openai.com/docs/api-reference/completions.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

FinishReason = Literal["stop", "length", "tool_calls", "content_filter"]
"""Why a choice ended; this server produces ``stop`` and ``length``."""

Penalty = Annotated[float, Field(ge=-2.0, le=2.0)]
StopList = Annotated[list[str], Field(max_length=4)]
LogitBias = dict[str, Annotated[float, Field(ge=-100.0, le=100.0)]]


class OpenAIBaseModel(BaseModel):
    """Base of every wire model.

    Unknown fields are ignored, not rejected: clients and tools send vendor extras and newer
    OpenAI fields, and a strict server would break them. Parameters the server cannot honour are
    named fields that the layer above rejects with a clear 400, never silently dropped extras.
    """

    model_config = ConfigDict(extra="ignore")


# Requests


class StreamOptions(OpenAIBaseModel):
    """``stream_options``: only valid with ``stream: true``."""

    include_usage: bool | None = None
    include_obfuscation: bool | None = None


class TextContentPart(OpenAIBaseModel):
    """A text part of a message's content."""

    type: Literal["text"]
    text: str


class GenericContentPart(OpenAIBaseModel):
    """Any other content part (``image_url``, ``input_audio``…): parsed so it can be rejected with a 400."""

    type: str


def _content_part_tag(value: Any) -> str:
    """Route a content part by its ``type``: ``text`` parts must be complete text parts."""
    part_type = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return "TextContentPart" if part_type == "text" else "GenericContentPart"


ContentPart = Annotated[
    Annotated[TextContentPart, Tag("TextContentPart")]
    | Annotated[GenericContentPart, Tag("GenericContentPart")],
    Discriminator(_content_part_tag),
]
"""One element of a list-valued ``content``."""


class ChatMessage(OpenAIBaseModel):
    """One message of the conversation."""

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None


class ChatCompletionRequest(OpenAIBaseModel):
    """``POST /v1/chat/completions``.

    Fields are ``None`` when absent, so the server can tell "not sent" from a value and apply its
    own defaults. ``top_k``, ``min_p`` and ``repetition_penalty`` are streamserve extensions.
    """

    messages: list[ChatMessage] = Field(min_length=1)
    model: str
    frequency_penalty: Penalty | None = None
    logit_bias: LogitBias | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    n: int | None = Field(default=1, ge=1)
    presence_penalty: Penalty | None = None
    response_format: dict[str, Any] | None = None
    seed: int | None = None
    service_tier: str | None = None
    stop: str | StopList | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, ge=0.0, le=1.0)
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    user: str | None = None
    # Extensions (not in OpenAI's API).
    top_k: int | None = Field(default=None, ge=0)
    min_p: float | None = Field(default=None, ge=0.0, le=1.0)
    repetition_penalty: float | None = Field(default=None, gt=0.0)


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
    # Extensions (not in OpenAI's API).
    top_k: int | None = Field(default=None, ge=0)
    min_p: float | None = Field(default=None, ge=0.0, le=1.0)
    repetition_penalty: float | None = Field(default=None, gt=0.0)


# Usage and logprobs


class PromptTokensDetails(OpenAIBaseModel):
    """Breakdown of the prompt tokens: how many came from the prefix cache."""

    cached_tokens: int = 0


class Usage(OpenAIBaseModel):
    """Token counts of one request; ``completion_tokens`` is summed over all choices."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails | None = None


class TopLogprob(OpenAIBaseModel):
    """One alternative token at a position (chat logprobs)."""

    token: str
    logprob: float
    bytes: list[int] | None = None


class ChatCompletionTokenLogprob(OpenAIBaseModel):
    """The sampled token at one position with its alternatives (chat logprobs)."""

    token: str
    logprob: float
    bytes: list[int] | None = None
    top_logprobs: list[TopLogprob]


class ChatLogprobs(OpenAIBaseModel):
    """A choice's (or chunk's) chat logprobs: ``{"content": [...], "refusal": null}``."""

    content: list[ChatCompletionTokenLogprob] | None = None
    refusal: list[ChatCompletionTokenLogprob] | None = None


class CompletionLogprobs(OpenAIBaseModel):
    """Legacy completions logprobs: parallel lists, one entry per token."""

    tokens: list[str]
    token_logprobs: list[float | None]
    top_logprobs: list[dict[str, float]] | None = None
    text_offset: list[int]


# Chat responses


class ChatCompletionMessage(OpenAIBaseModel):
    """The assistant message of a non-streamed choice."""

    role: Literal["assistant"] = "assistant"
    content: str | None = None
    refusal: str | None = None


class ChatCompletionChoice(OpenAIBaseModel):
    """One choice of a non-streamed chat completion."""

    index: int
    message: ChatCompletionMessage
    logprobs: ChatLogprobs | None = None
    finish_reason: FinishReason


class ChatCompletion(OpenAIBaseModel):
    """A non-streamed chat completion (``object: "chat.completion"``)."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    system_fingerprint: str | None = None
    choices: list[ChatCompletionChoice]
    usage: Usage


class ChatDelta(OpenAIBaseModel):
    """What one chunk adds to a choice; only the keys sent are set.

    The role chunk sends ``{"role": "assistant", "content": "", "refusal": null}``, a content chunk
    ``{"content": "…"}`` and the finish chunk ``{}``.
    """

    role: Literal["assistant"] | None = None
    content: str | None = None
    refusal: str | None = None


class ChatCompletionChunkChoice(OpenAIBaseModel):
    """One choice of a streamed chat chunk; ``finish_reason`` is null except on the finish chunk."""

    index: int
    delta: ChatDelta
    logprobs: ChatLogprobs | None = None
    finish_reason: FinishReason | None = None


class ChatCompletionChunk(OpenAIBaseModel):
    """One streamed chat event (``object: "chat.completion.chunk"``).

    ``usage`` is absent without ``stream_options.include_usage``; with it, null on every chunk but
    the last, which has ``choices: []`` and the request's usage.
    """

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    system_fingerprint: str | None = None
    choices: list[ChatCompletionChunkChoice]
    usage: Usage | None = None


# Legacy completion responses


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


# Models


class ModelCard(OpenAIBaseModel):
    """One served model name; ``max_model_len`` is the context of one request (prompt plus output)."""

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str
    max_model_len: int


class ModelList(OpenAIBaseModel):
    """``GET /v1/models``."""

    object: Literal["list"] = "list"
    data: list[ModelCard]


# Errors


class ErrorBody(OpenAIBaseModel):
    """OpenAI's error object; all four keys are always sent, ``param`` and ``code`` may be null."""

    message: str
    type: str
    param: str | None
    code: str | None


class ErrorResponse(OpenAIBaseModel):
    """The error envelope: ``{"error": {...}}``, for non-2xx responses and mid-stream error events."""

    error: ErrorBody
