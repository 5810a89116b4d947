"""``/v1/models``: every servable model name, loaded or not; ``/models/load`` and ``/models/unload``."""

from __future__ import annotations

from typing import Literal

from streamserve.api.protocol.base import OpenAIBaseModel


class ModelCard(OpenAIBaseModel):
    """One served model name, with its model's ``state`` (``loaded``, ``loading``, ``unloaded``) and, once
    loaded, ``max_model_len``: the context of one request (prompt plus output).

    ``deterministic`` says whether the server runs with ``--deterministic`` (docs/determinism.md).
    ``memory_bytes`` is what the model counts against the memory budget while loaded.
    """

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str
    state: Literal["loaded", "loading", "unloaded"]
    max_model_len: int | None = None
    deterministic: bool = False
    memory_bytes: int | None = None


class ModelAction(OpenAIBaseModel):
    """``POST /models/load`` and ``POST /models/unload``: the model to act on (llama.cpp's router names)."""

    model: str


class ModelList(OpenAIBaseModel):
    """``GET /v1/models``."""

    object: Literal["list"] = "list"
    data: list[ModelCard]
