"""Responses input: the request's items, the stored conversation before them, and the prompt they make.

Each input item is normalized once into the shape ``input_items`` lists (a message with an id and
typed content parts, or a ``function_call`` / ``function_call_output``) and into a chat message for the
template: a call becomes an assistant message with ``tool_calls``, its output a ``tool`` message, so
``prompting/tool_prompt.py`` renders them as it does for chat. A ``previous_response_id`` chain
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
from streamserve.formats.responses import new_item_id
from streamserve.prompting.errors import RequestError
from streamserve.prompting.prompt import encode_chat
from streamserve.prompting.structured import OutputSpec
from streamserve.prompting.templates import ChatTemplate
from streamserve.prompting.tokenizer import Tokenizer
from streamserve.prompting.tool_prompt import tool_messages
from streamserve.store import ChainLink

ROLES = frozenset({"user", "assistant", "system", "developer"})
_TEXT_PARTS = {"input_text", "output_text"}
AUTO_TRUNCATION_RESERVE = 4
"""With ``truncation: auto`` and no ``max_output_tokens``, keep at least 1/4 of the context for the answer."""


@dataclass(frozen=True, slots=True)
class InputItem:
    """One input item: as stored and listed (``item``) and as a chat message for the template."""

    id: str
    item: dict[str, Any]
    message: dict[str, Any]


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
    if kind == "function_call":
        return _call_item(raw, param)
    if kind == "function_call_output":
        return _output_item(raw, param)
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


def _string(raw: dict[str, Any], key: str, param: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or (key != "arguments" and not value):
        raise InvalidRequestError(f"Missing required parameter: '{param}.{key}' (a string).", param=f"{param}.{key}",
                                  code="missing_required_parameter")
    return value


def _own_id(raw: dict[str, Any], prefix: str) -> str:
    given = raw.get("id")
    return given if isinstance(given, str) and given else new_item_id(prefix)


def _call_item(raw: dict[str, Any], param: str) -> InputItem:
    """A ``function_call`` the model made earlier, sent back by the client."""
    item = {"id": _own_id(raw, "fc"), "type": "function_call", "status": "completed",
            "arguments": _string(raw, "arguments", param), "call_id": _string(raw, "call_id", param),
            "name": _string(raw, "name", param)}
    message = item_message(item)
    assert message is not None
    return InputItem(item["id"], item, message)


def _output_item(raw: dict[str, Any], param: str) -> InputItem:
    """A ``function_call_output``: the client's result of a call, a string or text parts."""
    output = raw.get("output")
    if isinstance(output, list):
        output = "".join(_part_text(part, f"{param}.output[{j}]") for j, part in enumerate(output))
    if not isinstance(output, str):
        raise InvalidRequestError(f"{param}.output must be a string or a list of text parts", param=f"{param}.output")
    item = {"id": _own_id(raw, "fco"), "type": "function_call_output", "call_id": _string(raw, "call_id", param),
            "output": output, "status": "completed"}
    message = item_message(item)
    assert message is not None
    return InputItem(item["id"], item, message)


def item_message(item: dict[str, Any]) -> dict[str, Any] | None:
    """A stored input or output item as a chat message (None for an item that adds nothing to the prompt)."""
    kind = item.get("type")
    if kind == "function_call":
        call = {"id": item.get("call_id"), "type": "function",
                "function": {"name": item.get("name"), "arguments": item.get("arguments") or "{}"}}
        return {"role": "assistant", "content": "", "tool_calls": [call]}
    if kind == "function_call_output":
        return {"role": "tool", "tool_call_id": item.get("call_id"), "content": str(item.get("output", ""))}
    if kind != "message":
        return None
    text = "".join(str(p.get("text", "")) for p in item.get("content", []) if p.get("type") in _TEXT_PARTS)
    return {"role": str(item.get("role", "user")), "content": text}


def conversation(chain: Sequence[ChainLink]) -> list[dict[str, Any]]:
    """The messages of a stored conversation, oldest first: each response's input, then its output."""
    messages: list[dict[str, Any]] = []
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


def join_calls(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Assistant text and the function calls after it as one assistant turn, as the model wrote them.

    A response's output lists a message and then each call as separate items; in the prompt they are
    one turn (the text, then one ``<tool_call>`` block per call), so a chained turn repeats the tokens
    the model generated and the prompt cache serves them. A call output with no call before it is a 400.
    """
    out: list[dict[str, Any]] = []
    called: set[Any] = set()
    for message in messages:
        calls = message.get("tool_calls")
        if calls:
            called.update(call.get("id") for call in calls)
        if message.get("role") == "tool" and message.get("tool_call_id") not in called:
            raise InvalidRequestError(f"No tool call found for function call output with call_id "
                                      f"{message.get('tool_call_id')}.", param="input")
        previous = out[-1] if out else None
        if calls and previous is not None and previous.get("role") == "assistant":
            out[-1] = {**previous, "tool_calls": [*previous.get("tool_calls", ()), *calls]}
        else:
            out.append(dict(message))
    return out


def _chars(message: dict[str, Any]) -> int:
    calls = message.get("tool_calls") or ()
    return len(message.get("content") or "") + sum(len(str(c["function"].get("arguments", ""))) for c in calls)


def build_prompt(template: ChatTemplate, tokenizer: Tokenizer, limits: Limits, *, instructions: str | None,
                 history: list[dict[str, Any]], max_output_tokens: int | None,
                 truncation: Literal["auto", "disabled"], spec: OutputSpec | None = None,
                 suffix: str = "") -> Prompt:
    """Tokenize instructions + history (and the tools); with ``auto``, drop the oldest items until prompt and
    output fit.

    ``disabled`` (OpenAI's default) gives a 400 ``context_length_exceeded`` when they do not fit, and so
    does ``auto`` when even the last item alone does not. The last item is never dropped; dropping is a
    binary search over how many leading items go. Without ``max_output_tokens``, ``auto`` keeps a quarter
    of the context for the answer. ``spec``'s tools go into the prompt as chat's do, and ``suffix`` (a
    forced call's opening) ends it.
    """
    system = [{"role": "system", "content": instructions}] if instructions else []
    spec = spec or OutputSpec()
    history = join_calls(history)
    kept = history[-1:] if truncation == "auto" else history  # what cannot be dropped must fit
    check_length(sum(_chars(m) for m in system + kept), limits, "input")

    def encode(dropped: int) -> list[int]:
        try:
            messages, tools = tool_messages(system + history[dropped:], spec, native=template.native_tools)
            ids = encode_chat(template, messages, tokenizer, tools)
        except RequestError as exc:
            raise InvalidRequestError(exc.message, param="input", code=exc.code) from None
        if suffix:
            ids += tokenizer.tokenize(suffix, add_special=False, parse_special=False)
        return ids
    ids, dropped = encode(0), 0
    if truncation == "auto":
        reserve = max_output_tokens or max(16, limits.max_model_len // AUTO_TRUNCATION_RESERVE)
        if len(ids) + reserve > limits.max_model_len:
            low, high = 1, len(history) - 1  # the smallest count of dropped items that fits, if any
            best: tuple[list[int], int] | None = None
            while low <= high:
                middle = (low + high) // 2
                candidate = encode(middle)
                if len(candidate) + reserve <= limits.max_model_len:
                    best, high = (candidate, middle), middle - 1
                else:
                    low = middle + 1
            if best is not None:  # else nothing can go: the whole prompt is checked as it is, below
                ids, dropped = best
    budget = output_budget(len(ids), max_output_tokens, None, limits, param="input", name="max_output_tokens")
    return Prompt(ids, dropped, budget)
