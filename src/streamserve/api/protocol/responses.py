"""``/v1/responses``: the create request, the response object, its items, and the list and delete shapes.

https://platform.openai.com/docs/api-reference/responses

Input items stay loose dicts here (``input: str | list[dict]``) so that ``api/responses/inputs.py`` can
name the exact offending path (``input[2].content[0]``) in a 400. The stream events are built as dicts
by ``formats/responses.py``; the models below document the objects they carry.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from streamserve.api.protocol.base import KeepAlive, OpenAIBaseModel, StreamOptions
from streamserve.api.protocol.moderations import ModerationOptions


class ResponseCreateRequest(OpenAIBaseModel):
    """``POST /v1/responses``.

    ``max_output_tokens`` is checked by the server (OpenAI's minimum of 16 has its own message). Fields
    of features the server does not have (``conversation``, ``prompt``, built-in tools) are declared so
    they can be refused by name; ``reasoning``, ``service_tier`` and the like are accepted and echoed.
    ``text.format``, ``tools`` and ``tool_choice`` stay loose dicts, checked by ``api/responses/output.py``
    so a 400 names the exact path; ``moderation`` is OpenAI's moderated-completions field.
    """

    model: str
    input: str | list[dict[str, Any]] | None = None
    instructions: str | None = None
    background: bool | None = None
    include: list[str] | None = None
    max_output_tokens: int | None = None
    max_tool_calls: int | None = Field(default=None, ge=1)
    metadata: dict[str, str] | None = None
    parallel_tool_calls: bool | None = None
    previous_response_id: str | None = None
    prompt_cache_key: str | None = None
    reasoning: dict[str, Any] | None = None
    safety_identifier: str | None = None
    service_tier: str | None = None
    store: bool | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    text: dict[str, Any] | None = None
    tool_choice: str | dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    top_p: float | None = Field(default=None, ge=0.0, le=1.0)
    truncation: Literal["auto", "disabled"] | None = None
    user: str | None = None
    moderation: ModerationOptions | None = None
    keep_alive: KeepAlive = None  # an extension (Ollama's): how long the model stays loaded after this request
    # Refused with a 400 naming them: the server has no such feature.
    conversation: str | dict[str, Any] | None = None
    prompt: dict[str, Any] | None = None


class OutputTextLogprob(OpenAIBaseModel):
    """One token of an ``output_text`` part, with its alternatives."""

    token: str
    logprob: float
    bytes: list[int]
    top_logprobs: list[dict[str, Any]]


class OutputText(OpenAIBaseModel):
    """A text part of an assistant message."""

    type: Literal["output_text"] = "output_text"
    annotations: list[dict[str, Any]]
    logprobs: list[OutputTextLogprob]
    text: str


class OutputMessage(OpenAIBaseModel):
    """An assistant message item; ``status`` is ``incomplete`` when the response stopped early."""

    id: str
    type: Literal["message"] = "message"
    status: Literal["in_progress", "completed", "incomplete"]
    content: list[OutputText]
    role: Literal["assistant"] = "assistant"


class FunctionCall(OpenAIBaseModel):
    """A function call item: ``id`` (``fc_…``) names the item, ``call_id`` (``call_…``) pairs it with its output."""

    id: str
    type: Literal["function_call"] = "function_call"
    status: Literal["in_progress", "completed", "incomplete"]
    arguments: str
    call_id: str
    name: str


class InputTokensDetails(OpenAIBaseModel):
    """``cached_tokens``: prompt tokens served from the prompt cache (a chained turn's history)."""

    cached_tokens: int
    cache_write_tokens: int = 0


class OutputTokensDetails(OpenAIBaseModel):
    """Always 0 reasoning tokens: no reasoning models here."""

    reasoning_tokens: int = 0


class ResponseUsage(OpenAIBaseModel):
    """Token counts of one response."""

    input_tokens: int
    input_tokens_details: InputTokensDetails
    output_tokens: int
    output_tokens_details: OutputTokensDetails
    total_tokens: int


class ResponseError(OpenAIBaseModel):
    """Why a response failed (``server_error`` when the server shut down or restarted under it)."""

    code: str
    message: str


class IncompleteDetails(OpenAIBaseModel):
    """Why a response is incomplete: ``max_output_tokens`` (or ``content_filter``)."""

    reason: str


class ResponseObject(OpenAIBaseModel):
    """A response (``object: "response"``), as returned, retrieved and carried by lifecycle events."""

    id: str
    object: Literal["response"] = "response"
    created_at: int
    status: Literal["queued", "in_progress", "completed", "incomplete", "failed", "cancelled"]
    background: bool
    completed_at: int | None = None
    error: ResponseError | None = None
    incomplete_details: IncompleteDetails | None = None
    instructions: str | None = None
    max_output_tokens: int | None = None
    max_tool_calls: int | None = None
    metadata: dict[str, str]
    parallel_tool_calls: bool
    previous_response_id: str | None = None
    prompt_cache_key: str | None = None
    reasoning: dict[str, Any] | None = None
    safety_identifier: str | None = None
    service_tier: str | None = None
    store: bool
    temperature: float
    text: dict[str, Any]
    tool_choice: str | dict[str, Any]
    tools: list[dict[str, Any]]
    top_logprobs: int
    top_p: float
    truncation: Literal["auto", "disabled"]
    user: str | None = None
    model: str
    output: list[OutputMessage | FunctionCall]
    usage: ResponseUsage | None = None
    moderation: dict[str, Any] | None = None


class InputItemList(OpenAIBaseModel):
    """``GET /v1/responses/{id}/input_items``: one page, in the order asked for."""

    object: Literal["list"] = "list"
    data: list[dict[str, Any]]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool


class ResponseDeleted(OpenAIBaseModel):
    """``DELETE /v1/responses/{id}``."""

    id: str
    object: Literal["response.deleted"] = "response.deleted"
    deleted: bool
