"""A ``POST /v1/responses`` body: its checks, the fields every response echoes, its sampling, its generation."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from streamserve.api.errors import InvalidRequestError, NotSupportedError
from streamserve.api.moderation import message_prompts, plan_request
from streamserve.api.protocol import ResponseCreateRequest
from streamserve.api.responses import inputs, output
from streamserve.api.state import LoadedModel
from streamserve.engine import SamplingParams
from streamserve.formats.responses import ResponseFormatter, ResponseMeta, new_response_id
from streamserve.generation.generation import ChoiceRequest, GenerationRequest
from streamserve.prompting.structured import OutputSpec, plan_output
from streamserve.store import ChainLink

LOGPROBS_INCLUDE = "message.output_text.logprobs"
METADATA_MAX_PAIRS, METADATA_MAX_KEY, METADATA_MAX_VALUE = 16, 64, 512
MIN_OUTPUT_TOKENS = 16
"""OpenAI refuses a ``max_output_tokens`` below 16."""


def check(body: ResponseCreateRequest) -> OutputSpec:
    """400 for what OpenAI refuses and for what this server cannot do (naming the param), before anything runs;
    returns the requested output shape (``text.format``, function tools)."""
    if body.max_output_tokens is not None and body.max_output_tokens < MIN_OUTPUT_TOKENS:
        raise InvalidRequestError(
            f"Invalid 'max_output_tokens': integer below minimum value. Expected a value >= {MIN_OUTPUT_TOKENS}, "
            f"but got {body.max_output_tokens} instead.", param="max_output_tokens", code="integer_below_min_value")
    if body.stream_options is not None and not body.stream:
        raise InvalidRequestError("stream_options is only allowed when stream is true", param="stream_options")
    if body.background and body.store is False:
        raise InvalidRequestError("background responses must be stored: store cannot be false with background",
                                  param="store")
    if body.conversation is not None:
        raise NotSupportedError("conversation objects are not supported; chain turns with previous_response_id",
                                param="conversation")
    if body.prompt is not None:
        raise NotSupportedError("prompt templates are not supported", param="prompt")
    if body.input is None and body.previous_response_id is None:
        raise InvalidRequestError("Missing required parameter: 'input'.", param="input")
    _check_metadata(body.metadata)
    return output.output_spec(body)


def _check_metadata(metadata: dict[str, str] | None) -> None:
    if not metadata:
        return
    if len(metadata) > METADATA_MAX_PAIRS:
        raise InvalidRequestError(f"metadata has at most {METADATA_MAX_PAIRS} pairs", param="metadata")
    for key, value in metadata.items():
        if len(key) > METADATA_MAX_KEY or len(value) > METADATA_MAX_VALUE:
            raise InvalidRequestError(f"metadata keys have at most {METADATA_MAX_KEY} characters and values at most "
                                      f"{METADATA_MAX_VALUE}", param=f"metadata.{key[:METADATA_MAX_KEY]}")


def wants_logprobs(body: ResponseCreateRequest) -> bool:
    """Whether ``include`` asks for the output text's token logprobs."""
    return LOGPROBS_INCLUDE in (body.include or ())


def echo_fields(body: ResponseCreateRequest) -> dict[str, Any]:
    """The request-derived fields of every snapshot of this response, in OpenAI's order, nulls included."""
    return {
        "instructions": body.instructions,
        "max_output_tokens": body.max_output_tokens,
        "max_tool_calls": body.max_tool_calls,
        "metadata": body.metadata or {},
        "parallel_tool_calls": True if body.parallel_tool_calls is None else body.parallel_tool_calls,
        "previous_response_id": body.previous_response_id,
        "prompt_cache_key": body.prompt_cache_key,
        "reasoning": {"effort": None, "summary": None},
        "safety_identifier": body.safety_identifier,
        "service_tier": "default",
        "store": body.store is not False,
        "temperature": 1.0 if body.temperature is None else body.temperature,
        "text": output.echo_text(body),
        "tool_choice": body.tool_choice or "auto",
        "tools": output.echo_tools(body),
        "top_logprobs": body.top_logprobs or 0,
        "top_p": 1.0 if body.top_p is None else body.top_p,
        "truncation": body.truncation or "disabled",
        "user": body.user,
    }


def sampling(body: ResponseCreateRequest, max_tokens: int, stop_ids: frozenset[int],
             grammar: str | None = None) -> SamplingParams:
    """The engine's parameters: temperature and top_p as given (OpenAI's defaults of 1), logprobs if included,
    and the grammar of a structured answer or of tool calls."""
    return SamplingParams(
        max_tokens=max_tokens,
        temperature=1.0 if body.temperature is None else body.temperature,
        top_p=1.0 if body.top_p is None else body.top_p,
        logprobs=(body.top_logprobs or 0) if wants_logprobs(body) else None,
        stop_token_ids=stop_ids,
        grammar=grammar,
    )


async def generation(body: ResponseCreateRequest, loaded: LoadedModel, chain: list[ChainLink],
                     items: list[inputs.InputItem]) -> tuple[GenerationRequest, ResponseFormatter]:
    """The one place a Responses request becomes a GenerationRequest (moderation plan included) and its formatter."""
    wanted = check(body)
    shape = plan_output(wanted)
    moderation = await plan_request(loaded.moderation, body.moderation,
                                    message_prompts([item.message for item in items]), param="input",
                                    stream=bool(body.stream))
    # Templating scales with the input: off the event loop.
    prompt = await asyncio.to_thread(
        inputs.build_prompt, loaded.template, loaded.engine.tokenizer, loaded.limits,
        instructions=body.instructions, history=inputs.conversation(chain) + [item.message for item in items],
        max_output_tokens=body.max_output_tokens, truncation=body.truncation or "disabled", spec=wanted,
        suffix=shape.prompt_suffix)
    params = sampling(body, prompt.max_tokens, loaded.stop_ids, shape.grammar)
    spec = GenerationRequest([ChoiceRequest(prompt.ids, params)], loaded.template.stop, len(prompt.ids),
                             moderation=moderation, tool_prefix=shape.tool_prefix)
    meta = ResponseMeta(new_response_id(), int(time.time()), body.model, bool(body.background), echo_fields(body),
                        wants_logprobs(body))
    return spec, ResponseFormatter(meta)
