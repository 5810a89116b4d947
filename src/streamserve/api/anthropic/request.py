"""A Messages API request -> the neutral ``GenerationRequest``: the one place its fields meet the engine's.

The prompt is built as chat builds it (``api/params.py``): the same chat template, the same tool prompt
and the same grammars (``prompting.structured``), so ``tool_choice`` ``any`` and a named ``tool`` are
enforced from the first token and ``auto`` constrains a call the model starts. ``count_tokens`` is the
length of exactly this prompt, so it equals what ``message_start`` reports (input plus cache reads).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from streamserve.api.anthropic.content import Conversation, conversation
from streamserve.api.anthropic.protocol import CountTokensRequest, MessagesRequest
from streamserve.api.errors import InvalidRequestError, NotSupportedError
from streamserve.api.params import Limits, check_length, output_budget
from streamserve.engine import SamplingParams
from streamserve.formats.anthropic import MessageMeta, new_message_id
from streamserve.generation.gate import ModerationPlan
from streamserve.generation.generation import ChoiceRequest, GenerationRequest
from streamserve.prompting.grammars import check_schema
from streamserve.prompting.prompt import encode_chat
from streamserve.prompting.structured import FunctionTool, OutputPlan, OutputSpec, ToolChoice, plan_output
from streamserve.prompting.templates import ChatTemplate
from streamserve.prompting.tokenizer import Tokenizer
from streamserve.prompting.tool_prompt import tool_messages

_TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,128}")
_CHOICES = {"auto": "auto", "any": "required", "tool": "function", "none": "none"}


@dataclass(frozen=True, slots=True)
class Prompt:
    """A request's prompt token ids and the output plan (grammar, how the output is parsed) they were built with."""

    ids: list[int]
    plan: OutputPlan


def output_spec(body: CountTokensRequest) -> OutputSpec:
    """``tools``, ``tool_choice`` and ``output_config.format`` (or the beta's ``output_format``), checked."""
    tools = tuple(_tool(i, tool) for i, tool in enumerate(body.tools or ()))
    names = [t.name for t in tools]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise InvalidRequestError(f"tools: tool names must be unique; {repeated[0]!r} is repeated.", param="tools")
    choice, parallel = _tool_choice(body.tool_choice, names)
    return OutputSpec(json_schema=_format(body), tools=tools, tool_choice=choice, parallel_tool_calls=parallel)


def _tool(index: int, tool: Mapping[str, Any]) -> FunctionTool:
    where = f"tools.{index}"
    kind = tool.get("type")
    if kind not in (None, "custom"):
        raise NotSupportedError(f"{where} is a {kind!r} tool; only client tools (with an input_schema) are "
                                "supported: this server runs no server tools.", param=f"{where}.type")
    name = tool.get("name")
    if not isinstance(name, str) or not _TOOL_NAME.fullmatch(name):
        raise InvalidRequestError(f"{where}.name: a string of 1 to 128 letters, digits, '_' or '-'.",
                                  param=f"{where}.name")
    schema = tool.get("input_schema")
    if not isinstance(schema, Mapping):
        raise InvalidRequestError(f"{where}.input_schema: Field required (a JSON schema object).",
                                  param=f"{where}.input_schema")
    if schema.get("type", "object") != "object":
        raise InvalidRequestError(f"{where}.input_schema: the schema's type must be 'object'.",
                                  param=f"{where}.input_schema.type")
    schema = {"type": "object", **schema}
    check_schema(schema, param=f"{where}.input_schema", what=f"tool {name!r}")
    description = tool.get("description")
    return FunctionTool(name, description if isinstance(description, str) else None, schema)


def _tool_choice(value: Mapping[str, Any] | None, names: list[str]) -> tuple[ToolChoice, bool]:
    """The neutral choice and whether several calls may come (``disable_parallel_tool_use`` says no)."""
    if value is None:
        return ToolChoice("auto"), True
    kind = value.get("type")
    if kind not in _CHOICES:
        raise InvalidRequestError(f"tool_choice.type: {kind!r} is not one of 'auto', 'any', 'tool', 'none'.",
                                  param="tool_choice.type")
    parallel = value.get("disable_parallel_tool_use") is not True
    if kind in ("any", "tool") and not names:
        raise InvalidRequestError(f"tool_choice {kind!r} needs tools.", param="tool_choice")
    if kind == "tool":
        name = value.get("name")
        if name not in names:
            raise InvalidRequestError(f"tool_choice.name: no tool named {name!r} is in tools.",
                                      param="tool_choice.name")
        return ToolChoice("function", name=str(name)), parallel
    return ToolChoice(_CHOICES[kind]), parallel  # type: ignore[arg-type]


def _format(body: CountTokensRequest) -> Mapping[str, Any] | None:
    """The JSON schema of ``output_config.format`` (or ``output_format``), or None for free text."""
    config = body.output_config or {}
    value, param = config.get("format"), "output_config.format"
    if value is None and body.output_format is not None:
        value, param = body.output_format, "output_format"
    if value is None:
        return None
    if not isinstance(value, Mapping) or value.get("type") != "json_schema":
        raise InvalidRequestError(f"{param}.type: only 'json_schema' is supported.", param=f"{param}.type")
    schema = value.get("schema")
    if not isinstance(schema, Mapping):
        raise InvalidRequestError(f"{param}.schema: Field required (a JSON schema object).", param=f"{param}.schema")
    check_schema(schema, param=f"{param}.schema", what=param)
    return schema


def build_prompt(body: CountTokensRequest, talk: Conversation, tokenizer: Tokenizer, template: ChatTemplate,
                 limits: Limits) -> Prompt:
    """The prompt's token ids: system, turns and tools in the chat template, then a forced call's opening or
    the prefill. Templating and tokenizing scale with the prompt: call it off the event loop."""
    spec = output_spec(body)
    if talk.prefill and (spec.calls_tools or spec.json_schema is not None):
        raise NotSupportedError("A prefilled assistant turn cannot be combined with tools or an output format "
                                "on this server.", param=f"messages.{len(body.messages) - 1}")
    check_length(talk.chars, limits, "messages")
    plan = plan_output(spec)
    messages, tools = tool_messages(talk.chat(), spec, native=template.native_tools)
    ids = encode_chat(template, messages, tokenizer, tools)
    suffix = plan.prompt_suffix + talk.prefill
    if suffix:
        ids += tokenizer.tokenize(suffix, add_special=False, parse_special=False)
    return Prompt(ids, plan)


def count_tokens(body: CountTokensRequest, tokenizer: Tokenizer, template: ChatTemplate, limits: Limits) -> int:
    """``input_tokens`` for ``/v1/messages/count_tokens``: the length of the prompt ``/v1/messages`` would read."""
    return len(build_prompt(body, conversation(body.system, body.messages), tokenizer, template, limits).ids)


def messages_request(body: MessagesRequest, talk: Conversation, tokenizer: Tokenizer, template: ChatTemplate,
                     limits: Limits, stop_ids: frozenset[int] = frozenset(),
                     moderation: ModerationPlan | None = None) -> tuple[GenerationRequest, MessageMeta]:
    """Validate a Messages request and build its generation (moderation plan included) and its message's meta."""
    stops = tuple(s for s in body.stop_sequences or () if s)
    if len(stops) > limits.max_stop_strings:
        raise InvalidRequestError(f"stop_sequences: at most {limits.max_stop_strings} on this server "
                                  "(--max-stop-strings).", param="stop_sequences")
    prompt = build_prompt(body, talk, tokenizer, template, limits)
    params = SamplingParams(
        max_tokens=output_budget(len(prompt.ids), body.max_tokens, None, limits, param="messages"),
        temperature=1.0 if body.temperature is None else body.temperature,
        top_p=1.0 if body.top_p is None else body.top_p,
        top_k=body.top_k or 0,
        stop_token_ids=stop_ids,
        grammar=prompt.plan.grammar,
    )
    spec = GenerationRequest([ChoiceRequest(prompt.ids, params)], stops + template.stop, len(prompt.ids),
                             moderation=moderation, tool_prefix=prompt.plan.tool_prefix)
    return spec, MessageMeta(new_message_id(), body.model, stops)
