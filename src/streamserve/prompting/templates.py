"""Chat templates: choosing one for a model and rendering OpenAI messages into prompt text.

Strategy, in order (``choose_template``): a ``--chat-template`` file (Jinja) > the GGUF's own
``tokenizer.chat_template`` (Jinja) > the model family's turn format (Gemma) > a plain transcript.
Jinja templates run in an immutable sandbox with the variables Hugging Face templates expect.
Turning the rendered text into token ids, safely, is ``prompting.prompt.encode_chat``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, NoReturn

import jinja2
import jinja2.meta
from jinja2.sandbox import ImmutableSandboxedEnvironment

from streamserve.prompting.errors import RequestError

ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
GEMMA_ARCHITECTURES = frozenset({"gemma", "gemma2", "gemma3", "gemma3n"})
_TRANSCRIPT_LABELS = {
    "system": "System",
    "developer": "System",
    "user": "User",
    "assistant": "Assistant",
    "tool": "Tool",
}


@dataclass(frozen=True, slots=True)
class ChatTemplate:
    """How to turn messages into prompt text for one model."""

    kind: Literal["jinja", "family", "transcript"]
    name: str  # e.g. "gguf", "file:/path", "gemma", "transcript" (printed at startup)
    source: str | None  # the Jinja text for kind "jinja"
    stop: tuple[str, ...]  # stop strings this format needs beyond the model's end-of-generation tokens
    native_tools: bool = False  # a Jinja template that renders ``tools`` and speaks ``<tool_call>`` (Hermes, Qwen)


GEMMA = ChatTemplate(kind="family", name="gemma", source=None, stop=("<start_of_turn>", "<end_of_turn>"))
TRANSCRIPT = ChatTemplate(
    kind="transcript",
    name="transcript",
    source=None,
    stop=tuple(f"\n{label}:" for label in dict.fromkeys(_TRANSCRIPT_LABELS.values())),
)


def choose_template(
    *, override_text: str | None, override_name: str | None, gguf_template: str | None, architecture: str
) -> ChatTemplate:
    """Pick the template for a model: override file > GGUF template > family format > transcript.

    ``override_name`` is where the override text came from (its file path); the template is then
    named ``file:<override_name>``. Raises ``ValueError`` (a startup error) if the chosen Jinja text is
    empty or does not compile.
    """
    if override_text is not None:
        return _jinja(override_text, f"file:{override_name}" if override_name else "file")
    if gguf_template and gguf_template.strip():
        return _jinja(gguf_template, "gguf")
    if architecture.lower() in GEMMA_ARCHITECTURES:
        return GEMMA
    return TRANSCRIPT


def flatten_content(content: str | list[Any] | None, *, param: str) -> str:
    """Message content as one string: ``None`` is ``""``, text parts are joined with ``""``.

    Parts may be mappings (``{"type": "text", "text": ...}``) or objects with ``.type``/``.text``.
    Any other part (an image, audio…) is a ``RequestError`` naming ``param``: only text is supported.
    """
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise RequestError(f"{param} must be a string or a list of content parts", param=param)
    texts: list[str] = []
    for index, part in enumerate(content):
        if isinstance(part, Mapping):
            kind, text = part.get("type"), part.get("text")
        else:
            kind, text = getattr(part, "type", None), getattr(part, "text", None)
        if kind != "text":
            raise RequestError(
                f"{param}[{index}] is a {kind!r} part; only text content parts are supported", param=param
            )
        if not isinstance(text, str):
            raise RequestError(f"{param}[{index}] is a text part without a string 'text'", param=param)
        texts.append(text)
    return "".join(texts)


def render_chat(
    template: ChatTemplate,
    messages: Sequence[Mapping[str, Any]],
    *,
    bos_text: str,
    eos_text: str,
    add_generation_prompt: bool = True,
    tools: list[dict[str, Any]] | None = None,
) -> str:
    """The prompt text for ``messages`` (content flattened, roles checked) in ``template``'s format.

    A Jinja template that refuses the messages (``raise_exception``) or fails on them raises
    ``RequestError(param="messages")``.
    """
    return render_messages(
        template,
        normalize_messages(messages),
        bos_text=bos_text,
        eos_text=eos_text,
        add_generation_prompt=add_generation_prompt,
        tools=tools,
    )


def normalize_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Copies of ``messages`` with a checked ``role`` and flattened string ``content``."""
    if not messages:
        raise RequestError("messages must contain at least one message", param="messages")
    normalized: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        role = message.get("role")
        if not isinstance(role, str) or role not in ROLES:
            raise RequestError(
                f"messages[{index}].role must be one of {', '.join(sorted(ROLES))}, got {role!r}",
                param=f"messages[{index}].role",
            )
        copy = dict(message)
        copy["content"] = flatten_content(message.get("content"), param=f"messages[{index}].content")
        normalized.append(copy)
    return normalized


def render_messages(
    template: ChatTemplate,
    messages: list[dict[str, Any]],
    *,
    bos_text: str,
    eos_text: str,
    add_generation_prompt: bool,
    tools: list[dict[str, Any]] | None = None,
) -> str:
    """Render messages already passed through ``normalize_messages``; ``tools`` only reach a Jinja template."""
    if template.kind == "jinja":
        assert template.source is not None, "a jinja ChatTemplate carries its source"
        return _render_jinja(template.source, messages, bos_text, eos_text, add_generation_prompt, tools)
    if template.kind == "family":
        return _render_gemma(messages, bos_text, add_generation_prompt)
    return _render_transcript(messages, add_generation_prompt)


def _raise_exception(message: str) -> NoReturn:
    raise RequestError(str(message), param="messages")


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


def _tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: Any = None,
    sort_keys: bool = False,
) -> str:
    """Hugging Face's ``tojson``: plain JSON, not Jinja's HTML-escaped variant."""
    return json.dumps(
        value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


_ENV = ImmutableSandboxedEnvironment(
    trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
)
_ENV.globals.update(raise_exception=_raise_exception, strftime_now=_strftime_now)
_ENV.filters["tojson"] = _tojson


@functools.lru_cache(maxsize=16)
def _compile(source: str) -> jinja2.Template:
    return _ENV.from_string(source)


def _jinja(source: str, name: str) -> ChatTemplate:
    if not source.strip():
        raise ValueError(f"chat template {name} is empty")
    try:
        _compile(source)
    except jinja2.TemplateSyntaxError as exc:
        raise ValueError(f"chat template {name} does not compile (line {exc.lineno}): {exc.message}") from exc
    native = "tools" in jinja2.meta.find_undeclared_variables(_ENV.parse(source)) and "<tool_call>" in source
    return ChatTemplate(kind="jinja", name=name, source=source, stop=(), native_tools=native)


def _render_jinja(
    source: str, messages: list[dict[str, Any]], bos_text: str, eos_text: str, add_generation_prompt: bool,
    tools: list[dict[str, Any]] | None = None,
) -> str:
    if "developer" not in source:
        messages = [{**m, "role": "system"} if m["role"] == "developer" else m for m in messages]
    extra = {} if tools is None else {"tools": tools}
    try:
        return _compile(source).render(
            messages=messages,
            bos_token=bos_text,
            eos_token=eos_text,
            add_generation_prompt=add_generation_prompt,
            **extra,
        )
    except RequestError:
        raise
    except Exception as exc:
        # A template is arbitrary code: any failure means it cannot render these messages.
        message = f"The chat template cannot render these messages: {exc}"
        raise RequestError(message, param="messages") from exc


def _render_gemma(messages: list[dict[str, Any]], bos_text: str, add_generation_prompt: bool) -> str:
    """Gemma's turns; system text is folded into the next user turn, as Gemma's own template does."""
    parts = [bos_text]
    pending: list[str] = []  # system texts waiting for the next user turn

    def turn(role: str, text: str) -> None:
        parts.append(f"<start_of_turn>{role}\n{text}<end_of_turn>\n")

    for message in messages:
        role, text = message["role"], message["content"].strip()
        if role in ("system", "developer"):
            if text:
                pending.append(text)
        elif role in ("user", "tool"):
            turn("user", "\n\n".join([*pending, text]))
            pending.clear()
        else:
            if pending:
                turn("user", "\n\n".join(pending))
                pending.clear()
            turn("model", text)
    if pending:
        turn("user", "\n\n".join(pending))
    if add_generation_prompt:
        parts.append("<start_of_turn>model\n")
    return "".join(parts)


def _render_transcript(messages: list[dict[str, Any]], add_generation_prompt: bool) -> str:
    """``System: …\\n\\nUser: …\\n\\nAssistant:``; ``TRANSCRIPT.stop`` keeps the model to one turn."""
    blocks = []
    for message in messages:
        label, text = _TRANSCRIPT_LABELS[message["role"]], message["content"].strip()
        blocks.append(f"{label}: {text}" if text else f"{label}:")
    if add_generation_prompt:
        blocks.append("Assistant:")
    return "\n\n".join(blocks)
