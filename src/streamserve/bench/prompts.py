"""Prompts the benchmark sends: the built-in mixed set, and JSONL files of chat requests.

A prompt is kept as chat messages plus any extra request fields; ``body()`` renders it for any
endpoint, so one prompt file serves ``/chat/completions``, ``/completions`` and ``/responses`` alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson

Endpoint = Literal["chat", "completions", "responses"]

# The notebook's experiment: a long answer whose first numbers come long before the last.
COUNT_PROMPT = "Count to 100, with a comma between each number and no newlines. E.g., 1, 2, 3, ..."

_LONG_CONTEXT = (
    "Streaming sends the completion as it is generated, as data-only server-sent events, instead of "
    "one response at the end. A client reads each chunk's delta, prints it, and keeps going until the "
    "server sends the done marker. The first token therefore reaches the user after the prompt has "
    "been processed and one decoding step has run, while the full answer takes one step per token. "
)

_BUILTIN: list[tuple[str, str]] = [
    ("short-capital", "What is the capital of France? Answer in one sentence."),
    ("short-math", "What is 17 times 23? Show the steps briefly."),
    ("short-haiku", "Write a haiku about a river in autumn."),
    ("count", COUNT_PROMPT),
    ("long", "Read the following notes and summarise them in three bullet points.\n\n" + _LONG_CONTEXT * 6),
    ("chinese", "请用三句话介绍一下长江,并说明它为什么重要。"),
]


@dataclass(frozen=True)
class Prompt:
    """One benchmark prompt: a name, chat messages, and extra request fields sent as they are."""

    name: str
    messages: list[dict[str, Any]]
    extra: dict[str, Any] = field(default_factory=dict)

    def text(self) -> str:
        """The messages flattened to one prompt string, for the legacy completions endpoint."""
        if "prompt" in self.extra:
            return str(self.extra["prompt"])
        return "\n".join(_content_text(m.get("content")) for m in self.messages)

    def body(
        self,
        endpoint: Endpoint,
        *,
        model: str,
        max_tokens: int | None,
        temperature: float | None,
        stream: bool,
        include_usage: bool,
    ) -> dict[str, Any]:
        """The JSON request body for ``endpoint``; the prompt's own fields win over the defaults."""
        body: dict[str, Any] = {"model": model}
        if max_tokens is not None:
            body["max_output_tokens" if endpoint == "responses" else "max_tokens"] = max_tokens
        if temperature is not None:
            body["temperature"] = temperature
        extra = {k: v for k, v in self.extra.items() if k not in ("prompt", "messages", "stream", "model")}
        body.update(extra)
        if endpoint == "chat":
            body["messages"] = self.messages
        elif endpoint == "responses":
            body["input"] = self.messages
        else:
            body["prompt"] = self.text()
        body["stream"] = stream
        if stream and include_usage and endpoint != "responses":  # a Responses stream always ends with usage
            body["stream_options"] = {"include_usage": True}
        else:
            body.pop("stream_options", None)
        return body


def _content_text(content: object) -> str:
    if content is None:
        return ""
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return str(content)


def user_prompt(name: str, text: str) -> Prompt:
    """A prompt made of one user message."""
    return Prompt(name=name, messages=[{"role": "user", "content": text}])


def builtin_prompts() -> list[Prompt]:
    """The default mixed set: short questions, the counting prompt, a long prompt, a Chinese one."""
    return [user_prompt(name, text) for name, text in _BUILTIN]


def load_prompts(path: Path) -> list[Prompt]:
    """Read a JSONL file, one chat request per line.

    A line holds ``messages`` (a chat request) or ``prompt`` (a string), plus any other request
    fields (``max_tokens``, ``temperature``, ...) to send unchanged; an optional ``name`` labels it.
    Blank lines and lines starting with ``#`` are skipped. Raises ``ValueError`` on a bad line.
    """
    prompts: list[Prompt] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"{path}:{number}: not JSON: {exc}") from exc
        if not isinstance(obj, dict):
            raise ValueError(f"{path}:{number}: expected a JSON object")
        name = str(obj.pop("name", f"line-{number}"))
        messages = obj.pop("messages", None)
        if messages is None:
            if not isinstance(obj.get("prompt"), str):
                raise ValueError(f"{path}:{number}: needs 'messages' (a list) or 'prompt' (a string)")
            messages = [{"role": "user", "content": obj["prompt"]}]
        if not isinstance(messages, list) or not messages:
            raise ValueError(f"{path}:{number}: 'messages' must be a non-empty list")
        prompts.append(Prompt(name=name, messages=messages, extra=obj))
    if not prompts:
        raise ValueError(f"{path}: no prompts")
    return prompts
