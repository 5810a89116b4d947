"""Moderation on the wire: ``POST /v1/moderations`` and the ``moderation`` field of moderated completions.

https://platform.openai.com/docs/api-reference/moderations
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from streamserve.api.protocol.base import OpenAIBaseModel


class ModerationModePolicy(OpenAIBaseModel):
    """``{"mode": "score" | "block"}`` for a request's input or its output."""

    mode: Literal["score", "block"]


class ModerationPolicy(OpenAIBaseModel):
    """What to do with the input and the output: score them (report results) or block on a flag."""

    input: ModerationModePolicy | None = None
    output: ModerationModePolicy | None = None


class ModerationOptions(OpenAIBaseModel):
    """A completion request's ``moderation`` field: OpenAI's moderated completions.

    ``model`` is required by OpenAI; this server moderates with the policies it was started with
    and reports their name. ``block`` on the output means blocking mode for this request.
    """

    model: str
    policy: ModerationPolicy | None = None


class TextInput(OpenAIBaseModel):
    """``{"type": "text", "text": ...}`` in a multi-modal ``input`` list."""

    type: Literal["text"]
    text: str


class ModerationRequest(OpenAIBaseModel):
    """``POST /v1/moderations``: a string, a list of strings, or a list of typed input parts."""

    input: str | list[str] | list[dict[str, Any]] = Field(union_mode="left_to_right")
    model: str | None = None


class ModerationResultBody(OpenAIBaseModel):
    """One input's verdict, with all 13 categories in each map."""

    flagged: bool
    categories: dict[str, bool]
    category_scores: dict[str, float]
    category_applied_input_types: dict[str, list[Literal["text", "image"]]]


class ModerationResponse(OpenAIBaseModel):
    """``{"id": "modr-…", "model", "results": [...]}``: one result per input."""

    id: str
    model: str
    results: list[ModerationResultBody]
