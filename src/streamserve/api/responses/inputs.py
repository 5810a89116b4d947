"""Responses input: the request's items, the stored conversation before them, and the prompt they make.

Each input item is normalized once into the shape ``input_items`` lists (a message with an id and
typed content parts) and into a chat message for the template. A ``previous_response_id`` chain
contributes every earlier response's input and output items, but not its ``instructions`` (as
OpenAI does): only this request's ``instructions`` lead the prompt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from streamserve.api.errors import InvalidRequestError, NotSupportedError
from streamserve.api.params import Limits, check_length, output_budget
from streamserve.store import ChainLink
from streamserve.streaming.errors import RequestError
from streamserve.streaming.prompt import encode_chat
from streamserve.streaming.responses_format import new_item_id
from streamserve.streaming.templates import ChatTemplate
from streamserve.streaming.tokenizer import Tokenizer

ROLES = frozenset({"user", "assistant", "system", "developer"})
_TEXT_PARTS = {"input_text", "output_text"}
_PENDING_ITEMS = {"function_call", "function_call_output"}
AUTO_TRUNCATION_RESERVE = 4
"""With ``truncation: auto`` and no ``max_output_tokens``, keep at least 1/4 of the context for the answer."""


@dataclass(frozen=True, slots=True)
class InputItem:
    """One input item: as stored and listed (``item``) and as a chat message for the template."""

    id: str
    item: dict[str, Any]
    message: dict[str, str]


@dataclass(frozen=True, slots=True)
class Prompt:
    """The prompt's token ids, how many conversation items ``truncation: auto`` dropped, and the output budget."""

    ids: list[int]
    dropped: int
    max_tokens: int


def parse_input(value: str | list[dict[str, Any]] | None) -> list[InputItem]:
    """The request's ``input`` as items; a string is one user message. Raises a 400 naming the bad path."""
    if value is None:
        return []
    if isinstance(value, str):
        return [_message_item(None, "user", value)]
    if not value:
        raise InvalidRequestError("input must be a string or a non-empty list of items", param="input")
    return [_item(index, raw) for index, raw in enumerate(value)]


def _item(index: int, raw: dict[str, Any]) -> InputItem:
    param = f"input[{index}]"
    kind = raw.get("type", "message")
    if kind in _PENDING_ITEMS:
        raise NotSupportedError(f"{kind} input items are not supported yet (function tools are not)", param=param)
    if kind != "message":
        raise NotSupportedError(f"input items of type {kind!r} are not supported", param=f"{param}.type")
    role = raw.get("role")
    if role not in ROLES:
        raise InvalidRequestError(f"{param}.role must be one of {', '.join(sorted(ROLES))}, got {role!r}",
                                  param=f"{param}.role")
    content = raw.get("content")
    if isinstance(content, str):
        text = content
    elif isinstance(content, list):
        text = "".join(_part_text(part, f"{param}.content[{j}]") for j, part in enumerate(content))
    else:
        raise InvalidRequestError(f"{param}.content must be a string or a list of content parts",
                                  param=f"{param}.content")
    item_id = raw.get("id") if isinstance(raw.get("id"), str) and raw.get("id") else None
    return _message_item(item_id, role, text)


def _part_text(part: Any, param: str) -> str:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind == "refusal":
        return ""
    if kind not in _TEXT_PARTS:
        raise NotSupportedError(f"{param} is a {kind!r} part; only text parts (input_text, output_text) are "
                                "supported", param=param)
    text = part.get("text")
    if not isinstance(text, str):
        raise InvalidRequestError(f"{param} is a text part without a string 'text'", param=param)
    return text


def _message_item(item_id: str | None, role: str, text: str) -> InputItem:
    item_id = item_id or new_item_id("msg")
    if role == "assistant":
        part: dict[str, Any] = {"type": "output_text", "text": text, "annotations": []}
    else:
        part = {"type": "input_text", "text": text}
    item = {"id": item_id, "type": "message", "role": role, "content": [part], "status": "completed"}
    return InputItem(item_id, item, {"role": role, "content": text})


def item_message(item: dict[str, Any]) -> dict[str, str] | None:
    """A stored input or output item as a chat message (None for an item that adds nothing to the prompt)."""
    if item.get("type") != "message":
        return None
    text = "".join(str(p.get("text", "")) for p in item.get("content", []) if p.get("type") in _TEXT_PARTS)
    return {"role": str(item.get("role", "user")), "content": text}


def conversation(chain: Sequence[ChainLink]) -> list[dict[str, str]]:
    """The messages of a stored conversation, oldest first: each response's input, then its output."""
    messages: list[dict[str, str]] = []
    for link in chain:
        for stored in link.items:
            message = item_message(orjson.loads(stored.body))
            if message is not None:
                messages.append(message)
        for item in orjson.loads(link.response.body).get("output", []):
            message = item_message(item)
            if message is not None:
                messages.append(message)
    return messages


def build_prompt(template: ChatTemplate, tokenizer: Tokenizer, limits: Limits, *, instructions: str | None,
                 history: list[dict[str, str]], max_output_tokens: int | None,
                 truncation: Literal["auto", "disabled"]) -> Prompt:
    """Tokenize instructions + history; with ``auto``, drop the oldest items until prompt and output fit.

    ``disabled`` (OpenAI's default) gives a 400 ``context_length_exceeded`` when they do not fit, and so
    does ``auto`` when even the last item alone does not. The last item is never dropped; dropping is a
    binary search over how many leading items go. Without ``max_output_tokens``, ``auto`` keeps a quarter
    of the context for the answer.
    """
    system = [{"role": "system", "content": instructions}] if instructions else []
    kept = history[-1:] if truncation == "auto" else history  # what cannot be dropped must fit
    check_length(sum(len(m["content"]) for m in system + kept), limits, "input")

    def encode(dropped: int) -> list[int]:
        try:
            return encode_chat(template, system + history[dropped:], tokenizer)
        except RequestError as exc:
            raise InvalidRequestError(exc.message, param="input", code=exc.code) from None

    ids, dropped = encode(0), 0
    if truncation == "auto":
        reserve = max_output_tokens or max(16, limits.ctx_size // AUTO_TRUNCATION_RESERVE)
        if len(ids) + reserve > limits.ctx_size:
            low, high = 1, len(history) - 1  # the smallest count of dropped items that fits, if any
            best: tuple[list[int], int] | None = None
            while low <= high:
                middle = (low + high) // 2
                candidate = encode(middle)
                if len(candidate) + reserve <= limits.ctx_size:
                    best, high = (candidate, middle), middle - 1
                else:
                    low = middle + 1
            if best is not None:  # else nothing can go: the whole prompt is checked as it is, below
                ids, dropped = best
    budget = output_budget(len(ids), max_output_tokens, None, limits, param="input", name="max_output_tokens")
    return Prompt(ids, dropped, budget)
