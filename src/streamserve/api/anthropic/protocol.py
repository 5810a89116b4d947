"""``/v1/messages`` and ``/v1/messages/count_tokens``: the request bodies, as Anthropic's API reference has them.

https://docs.anthropic.com/en/api/messages. Content blocks, tools and ``tool_choice`` stay plain objects
here: ``api/anthropic/request.py`` checks each one and names the exact path of a bad one in its 400.
Fields of the current ``anthropic`` SDK that do not apply to a local model (``thinking``, ``cache_control``,
``service_tier``, ``speed``, ``inference_geo``, ``container``, ``diagnostics``, ``output_config.effort``…) are
accepted and ignored, like any unknown field: clients send them by default.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class AnthropicBaseModel(BaseModel):
    """Base of the Messages API's request models: unknown fields are ignored, not refused."""

    model_config = ConfigDict(extra="ignore")


class MessageParam(AnthropicBaseModel):
    """One turn: ``user`` or ``assistant``, its content a string or a list of content blocks."""

    role: Literal["user", "assistant"]
    content: str | list[dict[str, Any]]


class CountTokensRequest(AnthropicBaseModel):
    """``POST /v1/messages/count_tokens``: everything that shapes the prompt, nothing that shapes sampling.

    ``output_format`` is the structured-outputs beta's top-level spelling of ``output_config.format``.
    """

    model: str
    messages: list[MessageParam] = Field(min_length=1)
    system: str | list[dict[str, Any]] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: dict[str, Any] | None = None
    output_config: dict[str, Any] | None = None
    output_format: dict[str, Any] | None = None


class MessagesRequest(CountTokensRequest):
    """``POST /v1/messages``. ``max_tokens`` is required, as Anthropic requires it.

    ``temperature`` (0 to 1, default 1), ``top_p`` and ``top_k`` are no longer in the 2.x SDK's signature
    but older clients, LangChain and ``extra_body`` send them: they apply.
    """

    max_tokens: int = Field(ge=1)
    stop_sequences: list[str] | None = None
    stream: bool | None = None
    metadata: dict[str, Any] | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=1.0)
    top_p: float | None = Field(default=None, ge=0.0, le=1.0)
    top_k: int | None = Field(default=None, ge=0)
