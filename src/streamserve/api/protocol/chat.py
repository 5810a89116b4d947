"""``/v1/chat/completions``: the request, the message, the response and the streamed chunk.

https://platform.openai.com/docs/api-reference/chat
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag

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
    Annotated[TextContentPart, Tag("TextContentPart")] | Annotated[GenericContentPart, Tag("GenericContentPart")],
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


class Prediction(OpenAIBaseModel):
    """``prediction``: text the answer will mostly repeat (OpenAI's Predicted Outputs), a string or text parts."""

    type: Literal["content"]
    content: str | list[TextContentPart]

    @property
    def text(self) -> str:
        """The predicted text, its parts joined."""
        return self.content if isinstance(self.content, str) else "".join(part.text for part in self.content)


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
    prediction: Prediction | None = None
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
    moderation: ModerationOptions | None = None
    # Deprecated by OpenAI in favour of tools / tool_choice; named so they can be refused, not ignored.
    functions: list[dict[str, Any]] | None = None
    function_call: str | dict[str, Any] | None = None
    # Extensions (not in OpenAI's API).
    top_k: int | None = Field(default=None, ge=0)
    min_p: float | None = Field(default=None, ge=0.0, le=1.0)
    keep_alive: KeepAlive = None
    repetition_penalty: float | None = Field(default=None, gt=0.0)


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


class FunctionCall(OpenAIBaseModel):
    """The function a tool call calls: its name and its arguments as JSON text, exactly as generated."""

    name: str
    arguments: str


class ChatCompletionMessageToolCall(OpenAIBaseModel):
    """One tool call of a non-streamed assistant message."""

    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatCompletionMessage(OpenAIBaseModel):
    """The assistant message of a non-streamed choice; ``content`` is null when it only calls tools."""

    role: Literal["assistant"] = "assistant"
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[ChatCompletionMessageToolCall] | None = None


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
    moderation: dict[str, Any] | None = None


class ChoiceDeltaFunctionCall(OpenAIBaseModel):
    """A tool call's function in a delta: the name once, then fragments of the arguments."""

    name: str | None = None
    arguments: str | None = None


class ChoiceDeltaToolCall(OpenAIBaseModel):
    """One tool call entry of a delta: the call's first carries ``id``, ``type`` and the name, later ones arguments."""

    index: int
    id: str | None = None
    type: Literal["function"] | None = None
    function: ChoiceDeltaFunctionCall | None = None


class ChatDelta(OpenAIBaseModel):
    """What one chunk adds to a choice; only the keys sent are set.

    The role chunk sends ``{"role": "assistant", "content": "", "refusal": null}`` (a tool turn:
    ``{"role": "assistant", "content": null}``), a content chunk ``{"content": "…"}``, a tool-call
    chunk ``{"tool_calls": [one entry]}`` and the finish chunk ``{}``.
    """

    role: Literal["assistant"] | None = None
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[ChoiceDeltaToolCall] | None = None


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
    moderation: dict[str, Any] | None = None
