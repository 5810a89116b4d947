"""Anthropic messages -> the chat-shaped messages the templates render, checked block by block.

* ``text`` blocks are the turn's text (several join with a newline); ``system`` is a string or text blocks.
* ``tool_use`` blocks (assistant) become the turn's ``tool_calls``, their ``input`` written as JSON; a
  ``tool_result`` (user) becomes a ``tool`` message, its content a string or text blocks, so
  ``prompting/tool_prompt.py`` renders calls and results as it does for chat. A result must answer a
  ``tool_use`` of an earlier turn, as Anthropic requires.
* ``thinking`` and ``redacted_thinking`` blocks (history from a model that thinks) are accepted and left
  out of the prompt: this model did not write them and cannot read their signatures.
* ``image``, ``document`` and any other block the model cannot read are a 400 naming the block: the
  model reads text only.
* Consecutive turns of one role are one turn, as Anthropic combines them. A last ``assistant`` turn of
  text is a prefill: the answer continues from it (it ends the prompt; the response holds only what follows).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from streamserve.api.anthropic.protocol import MessageParam
from streamserve.api.errors import InvalidRequestError, NotSupportedError

IGNORED_BLOCKS = frozenset({"thinking", "redacted_thinking"})
UNREADABLE_BLOCKS = frozenset({"image", "document", "search_result", "container_upload"})
"""Blocks a text-only model cannot read: a 400 that names them, not a 500 and not silence."""


@dataclass(frozen=True, slots=True)
class Conversation:
    """The system text, the chat-shaped turns, and the text of a trailing assistant turn to continue from."""

    system: str
    messages: list[dict[str, Any]]
    prefill: str = ""

    def chat(self) -> list[dict[str, Any]]:
        """The turns with the system text first, as the templates take them."""
        system = [{"role": "system", "content": self.system}] if self.system else []
        return [*system, *self.messages]

    @property
    def chars(self) -> int:
        """Characters of text the prompt holds (for the cheap length check before templating)."""
        total = len(self.system) + len(self.prefill)
        for message in self.messages:
            total += len(message.get("content") or "")
            total += sum(len(c["function"]["arguments"]) for c in message.get("tool_calls") or ())
        return total


def conversation(system: str | list[dict[str, Any]] | None, messages: Sequence[MessageParam]) -> Conversation:
    """The request's ``system`` and ``messages`` as a ``Conversation``; a 400 naming the first bad block."""
    turns: list[dict[str, Any]] = []
    calls: set[str] = set()
    for index, message in enumerate(messages):
        blocks = [{"type": "text", "text": message.content}] if isinstance(message.content, str) else message.content
        if message.role == "assistant":
            turns.extend(_assistant(blocks, f"messages.{index}", calls))
        else:
            turns.extend(_user(blocks, f"messages.{index}", calls))
    turns = _combined(turns)
    prefill = ""
    if turns and turns[-1]["role"] == "assistant":
        last = turns.pop()
        if last.get("tool_calls"):
            raise InvalidRequestError(
                "The last message is an assistant turn with tool_use blocks; send their tool_result blocks in a "
                "user turn after it.", param=f"messages.{len(messages) - 1}")
        prefill = last["content"]
    if not turns:
        raise InvalidRequestError("messages must hold at least one user turn", param="messages")
    return Conversation(system_text(system), turns, prefill)


def system_text(system: str | list[dict[str, Any]] | None) -> str:
    """``system`` as one text: a string, or text blocks joined with a newline."""
    if system is None or isinstance(system, str):
        return system or ""
    return "\n".join(_text(block, f"system.{i}") for i, block in enumerate(system))


def _text(block: dict[str, Any], param: str) -> str:
    kind = block.get("type")
    if kind in UNREADABLE_BLOCKS:
        raise NotSupportedError(f"{param}: {kind!r} blocks are not supported; this server's model reads text only.",
                                param=f"{param}.type")
    if kind != "text":
        raise InvalidRequestError(f"{param}: expected a 'text' block here, got {kind!r}.", param=f"{param}.type")
    text = block.get("text")
    if not isinstance(text, str):
        raise InvalidRequestError(f"{param}.text: a text block needs a string 'text'.", param=f"{param}.text")
    return text


def _assistant(blocks: list[dict[str, Any]], param: str, calls: set[str]) -> list[dict[str, Any]]:
    texts: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    for j, block in enumerate(blocks):
        where = f"{param}.content.{j}"
        kind = block.get("type")
        if kind in IGNORED_BLOCKS:
            continue
        if kind == "tool_use":
            tool_calls.append(_tool_use(block, where))
            calls.add(tool_calls[-1]["id"])
        else:
            texts.append(_text(block, where))
    if not tool_calls and not any(texts):
        return []  # only thinking: nothing of it reaches the prompt
    turn: dict[str, Any] = {"role": "assistant", "content": "\n".join(t for t in texts if t)}
    if tool_calls:
        turn["tool_calls"] = tool_calls
    return [turn]


def _tool_use(block: dict[str, Any], param: str) -> dict[str, Any]:
    call_id, name, arguments = block.get("id"), block.get("name"), block.get("input", {})
    if not isinstance(call_id, str) or not call_id:
        raise InvalidRequestError(f"{param}.id: a tool_use block needs a string 'id'.", param=f"{param}.id")
    if not isinstance(name, str) or not name:
        raise InvalidRequestError(f"{param}.name: a tool_use block needs a string 'name'.", param=f"{param}.name")
    if not isinstance(arguments, dict):
        raise InvalidRequestError(f"{param}.input: a tool_use block's input must be an object.",
                                  param=f"{param}.input")
    return {"id": call_id, "type": "function",
            "function": {"name": name, "arguments": json.dumps(arguments, ensure_ascii=False)}}


def _user(blocks: list[dict[str, Any]], param: str, calls: set[str]) -> list[dict[str, Any]]:
    """Results become ``tool`` messages and runs of text one user message each, in the order sent."""
    turns: list[dict[str, Any]] = []
    texts: list[str] = []
    for j, block in enumerate(blocks):
        where = f"{param}.content.{j}"
        kind = block.get("type")
        if kind in IGNORED_BLOCKS:
            continue
        if kind != "tool_result":
            texts.append(_text(block, where))
            continue
        if texts:
            turns.append({"role": "user", "content": "\n".join(texts)})
            texts = []
        turns.append(_tool_result(block, where, calls))
    if texts:
        turns.append({"role": "user", "content": "\n".join(texts)})
    return turns


def _tool_result(block: dict[str, Any], param: str, calls: set[str]) -> dict[str, Any]:
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str) or call_id not in calls:
        raise InvalidRequestError(
            f"{param}: unexpected tool_use_id {call_id!r} in a tool_result block: each tool_result must answer "
            "a tool_use block of an earlier assistant turn.", param=f"{param}.tool_use_id")
    content = block.get("content", "")
    if isinstance(content, str):
        text = content
    elif isinstance(content, list):
        text = "\n".join(_text(part, f"{param}.content.{k}") for k, part in enumerate(content))
    else:
        raise InvalidRequestError(f"{param}.content: a string or a list of text blocks.", param=f"{param}.content")
    if block.get("is_error") is True:
        text = f"Error: {text}"
    return {"role": "tool", "tool_call_id": call_id, "content": text}


def _combined(turns: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Consecutive user turns, or assistant turns, as one (tool results stay separate messages)."""
    out: list[dict[str, Any]] = []
    for turn in turns:
        previous = out[-1] if out else None
        if previous is None or previous["role"] != turn["role"] or turn["role"] == "tool":
            out.append(dict(turn))
            continue
        if previous.get("tool_calls") and turn["role"] == "assistant":
            out.append(dict(turn))  # text after calls is a new turn, as the model would write it
            continue
        text = "\n".join(t for t in (previous["content"], turn["content"]) if t)
        out[-1] = {**previous, **turn, "content": text}
        if previous.get("tool_calls") or turn.get("tool_calls"):
            out[-1]["tool_calls"] = [*previous.get("tool_calls", ()), *turn.get("tool_calls", ())]
    return out
