"""Chat messages to prompt token ids, without letting user text inject control tokens.

The template side (choosing a template, rendering messages to text) lives in
``prompting.templates``; its public names are re-exported here so callers need one import.
"""

from __future__ import annotations

import functools
import re
import secrets
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from streamserve.prompting.errors import RequestError
from streamserve.prompting.templates import (
    ChatTemplate,
    choose_template,
    flatten_content,
    normalize_messages,
    render_chat,
    render_messages,
)
from streamserve.prompting.tokenizer import Tokenizer

__all__ = ["ChatTemplate", "choose_template", "encode_chat", "flatten_content", "render_chat"]


def encode_chat(
    template: ChatTemplate, messages: Sequence[Mapping[str, Any]], tokenizer: Tokenizer,
    tools: list[dict[str, Any]] | None = None,
) -> list[int]:
    """The prompt token ids for ``messages`` rendered in ``template``, ending with the generation prompt.

    ``tools`` are handed to a template that renders them itself (``ChatTemplate.native_tools``).

    BOS: the tokenizer adds it only if ``tokenizer.add_bos`` and the rendered text does not already
    start with ``tokenizer.bos_text`` (Gemma's format writes ``<bos>`` itself: no double BOS).

    Injection: control tokens the template writes (``<|im_start|>``, ``<end_of_turn>``…) are parsed as
    special tokens, but text from the request never becomes one. "Reserved" texts are the tokenizer's
    ``control_texts`` plus its BOS and EOS texts.

    * Common case: no message content contains reserved text. The whole rendered text is tokenized
      with ``parse_special=True``, exactly as llama.cpp's server does.
    * Otherwise each such content is replaced, for rendering, by a unique random sentinel. The
      rendered text is split at the sentinels; template segments are tokenized with
      ``parse_special=True``, and each sentinel becomes its message's content tokenized with
      ``parse_special=False`` (so ``"<|im_end|>"`` in user text stays plain characters). The template
      never sees that content, so it cannot copy it anywhere else. If a template alters a sentinel
      (for example ``| upper``), the request is rejected with a ``RequestError(param="messages")``.
    * Other user strings a template may print (``name``, ``tool_call_id``, ``tool_calls``, ``tools``)
      must not contain reserved text at all: ``RequestError`` naming the field.

    Limit: a control token could still form across a content boundary only if a template wrote a
    partial control token right next to content; no sane template does.
    """
    normalized = normalize_messages(messages)
    reserved = _reserved_index(tokenizer.control_texts, tokenizer.bos_text, tokenizer.eos_text)
    _reject_reserved_fields(normalized, reserved)
    for text in _strings(tools or []):
        found = reserved.find(text)
        if found:
            raise RequestError(f"tools contain reserved control-token text {found!r}", param="tools")
    flagged = {index for index, message in enumerate(normalized) if reserved.find(message["content"])}
    if not flagged:
        text = _render(template, normalized, tokenizer, tools)
        return tokenizer.tokenize(text, add_special=_needs_bos(text, tokenizer), parse_special=True)
    return _encode_isolated(template, normalized, flagged, tokenizer, tools)


def _encode_isolated(
    template: ChatTemplate, messages: list[dict[str, Any]], flagged: set[int], tokenizer: Tokenizer,
    tools: list[dict[str, Any]] | None,
) -> list[int]:
    """Render with sentinels in place of the flagged contents; tokenize those contents as plain text."""
    nonce = secrets.token_hex(8)
    sentinel = re.compile(re.escape(f"[[ss-{nonce}-") + r"(\d+)\]\]")
    stand_ins = [
        {**message, "content": f"[[ss-{nonce}-{index}]]"} if index in flagged else message
        for index, message in enumerate(messages)
    ]
    # split() alternates: template text, message index, template text, …, template text.
    pieces = sentinel.split(_render(template, stand_ins, tokenizer, tools))
    if any(nonce in piece.lower() for piece in pieces[::2]):
        raise RequestError(
            "The message content contains reserved control-token text, which this model's chat "
            "template cannot keep apart from its own markup",
            param="messages",
        )
    ids = tokenizer.tokenize(pieces[0], add_special=_needs_bos(pieces[0], tokenizer), parse_special=True)
    for index, text in zip(pieces[1::2], pieces[2::2], strict=True):
        ids += tokenizer.tokenize(messages[int(index)]["content"], add_special=False, parse_special=False)
        if text:
            ids += tokenizer.tokenize(text, add_special=False, parse_special=True)
    return ids


def _render(template: ChatTemplate, messages: list[dict[str, Any]], tokenizer: Tokenizer,
            tools: list[dict[str, Any]] | None) -> str:
    return render_messages(
        template,
        messages,
        bos_text=tokenizer.bos_text,
        eos_text=tokenizer.eos_text,
        add_generation_prompt=True,
        tools=tools,
    )


def _needs_bos(text: str, tokenizer: Tokenizer) -> bool:
    bos = tokenizer.bos_text
    return tokenizer.add_bos and not (bos and text.startswith(bos))


def _reject_reserved_fields(messages: list[dict[str, Any]], reserved: _ReservedIndex) -> None:
    for index, message in enumerate(messages):
        for key, value in message.items():
            if key in ("role", "content"):
                continue
            for text in _strings(value):
                found = reserved.find(text)
                if found:
                    raise RequestError(
                        f"messages[{index}].{key} contains reserved control-token text {found!r}",
                        param=f"messages[{index}].{key}",
                    )


def _strings(value: Any) -> Iterator[str]:
    """Every string in a JSON-like value (keys and values of mappings, items of lists)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _strings(key)
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


@dataclass(frozen=True, slots=True)
class _ReservedIndex:
    """Finds reserved texts in a string: candidates start at a known first character, then a set lookup."""

    texts: frozenset[str]
    lengths: Mapping[str, tuple[int, ...]]  # first character -> distinct lengths, longest first
    starts: re.Pattern[str]

    def find(self, text: str) -> str | None:
        """The first reserved text occurring in ``text``, or ``None``."""
        for match in self.starts.finditer(text):
            at = match.start()
            for length in self.lengths[match.group()]:
                if text[at : at + length] in self.texts:
                    return text[at : at + length]
        return None


@functools.lru_cache(maxsize=8)
def _reserved_index(control_texts: frozenset[str], bos_text: str, eos_text: str) -> _ReservedIndex:
    texts = frozenset(text for text in (*control_texts, bos_text, eos_text) if text)
    lengths: dict[str, set[int]] = {}
    for text in texts:
        lengths.setdefault(text[0], set()).add(len(text))
    starts = re.compile("[" + "".join(map(re.escape, lengths)) + "]" if lengths else "(?!)")
    return _ReservedIndex(
        texts=texts,
        lengths={first: tuple(sorted(sizes, reverse=True)) for first, sizes in lengths.items()},
        starts=starts,
    )
