"""``/v1/models``: the served model names."""

from __future__ import annotations

from typing import Literal

from streamserve.api.protocol.base import OpenAIBaseModel


class ModelCard(OpenAIBaseModel):
    """One served model name; ``max_model_len`` is the context of one request (prompt plus output).

    ``deterministic`` says whether the server runs with ``--deterministic`` (docs/determinism.md).
    """

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str
    max_model_len: int
    deterministic: bool = False


class ModelList(OpenAIBaseModel):
    """``GET /v1/models``."""

    object: Literal["list"] = "list"
    data: list[ModelCard]
