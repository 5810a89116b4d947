"""The server's moderation: policies built at startup, per-request plans, prompt checks, ``/v1/moderations``.

Per request, OpenAI's ``moderation`` field adds to the server default, never removes from it:

* output: ``block`` (or ``--moderation blocking``) holds text until checked; ``--moderation async``
  checks behind the stream; a non-streamed request is always checked before it is returned.
* input: checked before generation whenever moderation is on or the request asks ``block``; a flag
  is a 400 ``content_filter``. Only user and tool messages are checked: system and developer
  text is the operator's, assistant text was this server's output.
* with the field present, results are reported: the ``moderation`` chunk or response field.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from streamserve.api.errors import (
    ContentFilterError,
    InvalidRequestError,
    ModerationFailedError,
    ModerationNotConfiguredError,
)
from streamserve.api.protocol import ModerationOptions, ModerationRequest
from streamserve.config import ModerationConfig, ServerConfig
from streamserve.engine import EngineClient, EngineConfig
from streamserve.formats.moderation import result_dict
from streamserve.generation.gate import ModerationPlan, OutputMode
from streamserve.models import resolve_model
from streamserve.moderation import Checker, ModerationError, ModerationObserver, ModerationResult, Policy, RulesPolicy
from streamserve.moderation.guard import GuardPolicy
from streamserve.moderation.profanity import ProfanityPolicy
from streamserve.prompting.prompt import choose_template, encode_chat, flatten_content
from streamserve.prompting.templates import ChatTemplate
from streamserve.prompting.tokenizer import Tokenizer

logger = logging.getLogger("streamserve.moderation")

MAX_INPUTS = 256
CHECKED_ROLES = frozenset({"user", "tool"})
GUARD_ENGINE = EngineConfig(max_num_seqs=4, max_model_len=2048, max_queue=256, max_num_batched_tokens=512)
"""The guard model's own engine, when it is not the served model."""


@dataclass
class ModerationService:
    """The checker over the configured policies, and the server's default mode and window."""

    checker: Checker
    config: ModerationConfig
    guard_engine: EngineClient | None = None

    async def plan(self, options: ModerationOptions | None, prompts: Sequence[str], *, param: str,
                   stream: bool) -> ModerationPlan | None:
        """This request's plan; checks the prompts first (raises ContentFilterError on a blocking flag)."""
        mode = self.config.mode
        policy = options.policy if options else None
        block_output = policy is not None and policy.output is not None and policy.output.mode == "block"
        output: OutputMode = "blocking" if block_output or mode == "blocking" else mode
        if output == "async" and not stream:
            output = "blocking"
        block_input = mode != "off" or (policy is not None and policy.input is not None
                                        and policy.input.mode == "block")
        report = options is not None
        if output == "off" and not block_input and not report:
            return None
        results = await self.score(list(prompts)) if prompts else []
        flagged = sorted({c for r in results for c in r.flagged_categories})
        if block_input and flagged:
            raise ContentFilterError(
                f"The prompt was flagged by moderation ({', '.join(flagged)}) and was not processed.", param=param)
        return ModerationPlan(self.checker, output, self.config.window, report, tuple(results) if report else ())

    async def score(self, texts: list[str]) -> list[ModerationResult]:
        """Every policy's combined verdict on each text; a failed check is a 500 ``moderation_failed``."""
        try:
            return await self.checker.score(texts)
        except ModerationError as exc:
            raise ModerationFailedError(f"moderation failed: {exc}") from None

    async def moderations(self, body: ModerationRequest) -> dict[str, Any]:
        """The ``/v1/moderations`` response for ``body``."""
        texts = _moderation_inputs(body.input)
        results = await self.score(texts)
        return {"id": "modr-" + uuid.uuid4().hex, "model": self.checker.model,
                "results": [result_dict(r) for r in results]}

    def close(self) -> None:
        """Stop the checker's thread and the guard's own engine."""
        self.checker.close()
        if self.guard_engine is not None:
            self.guard_engine.close()


def require(service: ModerationService | None) -> ModerationService:
    """The service, or a 404 when no policy is configured."""
    if service is None:
        raise ModerationNotConfiguredError(
            "No moderation model is configured on this server: start it with --moderation-rules FILE, "
            "--moderation-classifier profanity or --moderation-model PATH.")
    return service


async def plan_request(service: ModerationService | None, options: ModerationOptions | None,
                       prompts: Sequence[str], *, param: str, stream: bool) -> ModerationPlan | None:
    """The plan of one completion request (None when it is not moderated at all)."""
    if service is None:
        if options is not None:
            raise InvalidRequestError("moderation is not configured on this server", param="moderation")
        return None
    return await service.plan(options, prompts, param=param, stream=stream)


def chat_prompts(messages: Sequence[Any]) -> list[str]:
    """The text of a chat request to check: its user and tool messages, joined (one input)."""
    return message_prompts([m.model_dump(exclude_none=True) for m in messages], param="messages")


def message_prompts(messages: Sequence[Mapping[str, Any]], *, param: str = "input") -> list[str]:
    """The text of chat-shaped messages to check: the user and tool ones, joined (one input)."""
    texts = [flatten_content(m.get("content"), param=f"{param}.{i}.content")
             for i, m in enumerate(messages) if m.get("role") in CHECKED_ROLES]
    text = "\n".join(t for t in texts if t)
    return [text] if text else []


def completion_prompts(prompt: str | list[str] | list[int] | list[list[int]], tokenizer: Tokenizer) -> list[str]:
    """The text of each legacy prompt (token-id prompts decoded), one input each."""
    items: list[Any] = [prompt] if isinstance(prompt, str) or (prompt and isinstance(prompt[0], int)) else list(prompt)
    texts = []
    for item in items:
        if isinstance(item, str):
            texts.append(item)
        else:
            texts.append(b"".join(tokenizer.token_bytes(t) for t in item).decode("utf-8", errors="replace"))
    return texts


def build_moderation(config: ServerConfig, engine: EngineClient, template: ChatTemplate,
                     loop: asyncio.AbstractEventLoop | None,
                     observer: ModerationObserver | None) -> ModerationService | None:
    """The configured policies and their checker (blocking: loads classifiers and a guard model).

    ``loop`` is the event loop a guard model's checks run their engine work on.
    """
    settings = config.moderation
    if not settings.enabled:
        return None
    if settings.guard_model and loop is None:
        raise ValueError("a guard model needs the server's event loop")
    policies: list[Policy] = []
    if settings.rules_file:
        policies.append(RulesPolicy.from_file(settings.rules_file))
    if settings.classifier == "profanity":
        policies.append(ProfanityPolicy(settings.classifier_threshold, settings.window))
    guard_engine = None
    if settings.guard_model:
        name, path = resolve_model(settings.guard_model)
        _, served = resolve_model(config.model)
        guard, guard_template = engine, template
        if path.resolve() != served.resolve():
            guard_engine = guard = EngineClient.load(path, GUARD_ENGINE)
            guard.start()
            model = guard.model
            guard_template = choose_template(override_text=None, override_name=None,
                                             gguf_template=model.chat_template, architecture=model.architecture)
        assert loop is not None
        policies.append(GuardPolicy(guard, guard_encoder(guard.tokenizer, guard_template), loop, name=name,
                                    window=settings.window))
    logger.info("moderation: %s by default, window %d characters; policies: %s", settings.mode, settings.window,
                ", ".join(p.model for p in policies))
    return ModerationService(Checker(policies, observer), settings, guard_engine)


_LLAMA3_HEADER = "<|start_header_id|>"


def guard_encoder(tokenizer: Tokenizer, template: ChatTemplate) -> Callable[[str], list[int]]:
    """Task text -> the guard's prompt ids: Llama Guard 3's own turn format on a Llama 3 vocabulary, else the
    guard model's chat template with the task as one user message. Checked text never becomes a control token.
    """
    if _LLAMA3_HEADER not in tokenizer.control_texts:
        return lambda task: encode_chat(template, [{"role": "user", "content": task}], tokenizer)
    head = tokenizer.tokenize("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n", add_special=False,
                              parse_special=True)
    tail = tokenizer.tokenize("<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n", add_special=False,
                              parse_special=True)
    return lambda task: head + tokenizer.tokenize(task, add_special=False, parse_special=False) + tail


def _moderation_inputs(value: str | list[str] | list[dict[str, Any]]) -> list[str]:
    items: list[Any] = [value] if isinstance(value, str) else list(value)
    if not items:
        raise InvalidRequestError("input must not be empty", param="input")
    if len(items) > MAX_INPUTS:
        raise InvalidRequestError(f"input may hold at most {MAX_INPUTS} items", param="input")
    texts = []
    for i, item in enumerate(items):
        if isinstance(item, str):
            texts.append(item)
        elif isinstance(item, dict) and item.get("type") == "text" and isinstance(item.get("text"), str):
            texts.append(item["text"])
        elif isinstance(item, dict) and item.get("type") == "image_url":
            raise InvalidRequestError("image inputs are not supported by this server's moderation",
                                      param=f"input.{i}")
        else:
            raise InvalidRequestError("each input item must be a string or {\"type\": \"text\", \"text\": ...}",
                                      param=f"input.{i}")
    return texts
