"""Chat and completions requests -> the neutral GenerationRequest: the one place their fields meet the engine's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streamserve.api.errors import ContextLengthExceededError, InvalidRequestError, NotSupportedError
from streamserve.api.output_params import output_spec
from streamserve.api.protocol import ChatCompletionRequest, CompletionRequest
from streamserve.engine import SamplingParams
from streamserve.generation.gate import ModerationPlan
from streamserve.generation.generation import ChoiceRequest, GenerationRequest
from streamserve.prompting.prompt import encode_chat
from streamserve.prompting.structured import plan_output
from streamserve.prompting.templates import ChatTemplate
from streamserve.prompting.tokenizer import Tokenizer
from streamserve.prompting.tool_prompt import tool_messages

COMPLETIONS_DEFAULT_MAX_TOKENS = 16


@dataclass(frozen=True, slots=True)
class Limits:
    """What the served model and the server's flags allow one request.

    ``max_sequences`` caps prompts x ``n`` (the engine sequences one request takes): the server's
    per-request cap, never more than the lanes plus the queue, so any request that passes can be
    served once the server has room (a 429 then only ever means "full now, retry later").
    """

    max_model_len: int
    n_vocab: int
    max_n: int
    max_stop_strings: int
    max_tokens_default: int | None
    max_sequences: int
    max_token_bytes: int | None = None  # the longest token in bytes; None skips the cheap length check


def chat_request(body: ChatCompletionRequest, tokenizer: Tokenizer, template: ChatTemplate,
                 limits: Limits, stop_ids: frozenset[int] = frozenset(),
                 moderation: ModerationPlan | None = None) -> GenerationRequest:
    """Validate a chat request and build its generation: template, tokens, sampling per choice, moderation.

    ``stop_ids`` are the template's turn markers as token ids (see ``control_stop_ids``). A response
    format or tools add a grammar to every choice, tools go into the prompt, and a forced call's
    opening ends it (``prompting.structured``).
    """
    _check_common(body, limits)
    _check_messages(body)
    check_length(sum(_text_length(m.content) for m in body.messages), limits, "messages")
    _check_sequences(1, body.n or 1, limits)
    if body.top_logprobs is not None and not body.logprobs:
        raise InvalidRequestError("top_logprobs requires logprobs to be true", param="top_logprobs")
    spec = output_spec(body)
    plan = plan_output(spec)
    messages, tools = tool_messages([m.model_dump(exclude_none=True) for m in body.messages], spec,
                                    native=template.native_tools)
    prompt_ids = encode_chat(template, messages, tokenizer, tools)
    if plan.prompt_suffix:
        prompt_ids += tokenizer.tokenize(plan.prompt_suffix, add_special=False, parse_special=False)
    max_tokens = body.max_completion_tokens or body.max_tokens
    logprobs = (body.top_logprobs or 0) if body.logprobs else None
    params = _sampling(body, prompt_ids, max_tokens, None, logprobs, limits, param="messages", stop_ids=stop_ids,
                       grammar=plan.grammar, prediction=_prediction(body, tokenizer, limits))
    stop = _stops(body.stop, limits) + template.stop
    return GenerationRequest([ChoiceRequest(prompt_ids, p) for p in params], stop, len(prompt_ids),
                             moderation=moderation, tool_prefix=plan.tool_prefix,
                             predicted=body.prediction is not None)


def _prediction(body: ChatCompletionRequest, tokenizer: Tokenizer, limits: Limits) -> tuple[int, ...] | None:
    """The prediction's token ids (plain text: control-token strings in it stay text), or None.

    OpenAI refuses a prediction with ``n`` > 1, logprobs, penalties or tools; here every combination is
    accepted, since the prediction only proposes drafts and never changes what is generated.
    """
    if body.prediction is None:
        return None
    text = body.prediction.text
    if limits.max_token_bytes is not None:  # text past what the context could hold is never drafted
        text = text[: limits.max_model_len * limits.max_token_bytes]
    ids = tokenizer.tokenize(text, add_special=False, parse_special=False)
    return tuple(ids) or None


def completion_request(body: CompletionRequest, tokenizer: Tokenizer, limits: Limits,
                       moderation: ModerationPlan | None = None) -> GenerationRequest:
    """Validate a legacy completions request and build its generation: one set of choices per prompt."""
    _check_common(body, limits)
    if body.suffix:
        raise NotSupportedError("suffix (fill-in-the-middle) is not supported yet", param="suffix")
    if body.best_of is not None and body.best_of != (body.n or 1):
        raise NotSupportedError("best_of other than n is not supported yet", param="best_of")
    if body.echo and body.logprobs is not None:
        raise NotSupportedError("echo together with logprobs is not supported yet", param="echo")
    if body.max_tokens == 0:
        raise InvalidRequestError("max_tokens must be at least 1", param="max_tokens")
    if isinstance(body.prompt, str) or (body.prompt and isinstance(body.prompt[0], str)):
        texts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
        check_length(max(len(text) for text in texts if isinstance(text, str)), limits, "prompt")
    _check_sequences(_prompt_count(body.prompt), body.n or 1, limits)
    prompts = _prompts(body.prompt, tokenizer, limits)
    stop = _stops(body.stop, limits)
    choices = []
    for ids, text in prompts:
        for p in _sampling(body, ids, body.max_tokens, COMPLETIONS_DEFAULT_MAX_TOKENS, body.logprobs, limits,
                           param="prompt"):
            choices.append(ChoiceRequest(ids, p, text if body.echo else None))
    return GenerationRequest(choices, stop, sum(len(ids) for ids, _ in prompts), moderation=moderation)


def control_stop_ids(stops: tuple[str, ...], tokenizer: Tokenizer) -> frozenset[int]:
    """Template stop strings that are single control tokens: they never appear as text, so stop on the id."""
    ids = set()
    for text in stops:
        if text in tokenizer.control_texts:
            tokens = tokenizer.tokenize(text, add_special=False, parse_special=True)
            if len(tokens) == 1:
                ids.add(tokens[0])
    return frozenset(ids)


def _check_common(body: ChatCompletionRequest | CompletionRequest, limits: Limits) -> None:
    if body.stream_options is not None and not body.stream:
        raise InvalidRequestError("stream_options is only allowed when stream is true", param="stream_options")
    if (body.n or 1) > limits.max_n:
        raise InvalidRequestError(f"n must be at most {limits.max_n} on this server", param="n")


def check_length(chars: int, limits: Limits, param: str) -> None:
    """Refuse text that cannot fit the context, before any templating or tokenizing (which scale with it).

    No token is longer than ``max_token_bytes`` bytes, nor a character shorter than a byte, so a text of
    ``chars`` characters has at least ``chars / max_token_bytes`` tokens.
    """
    if limits.max_token_bytes is None:
        return
    least = -(-chars // limits.max_token_bytes)
    if least > limits.max_model_len:
        raise ContextLengthExceededError(
            f"This model's maximum context length is {limits.max_model_len} tokens; the {param} text ({chars} "
            f"characters) has at least {least} tokens.", param=param)


def _text_length(content: Any) -> int:
    if isinstance(content, str):
        return len(content)
    return sum(len(getattr(part, "text", "") or "") for part in content or ())


def _check_messages(body: ChatCompletionRequest) -> None:
    """Content is required, as OpenAI requires it: assistant messages may carry tool calls instead."""
    for index, message in enumerate(body.messages):
        if message.content is None and not (message.role == "assistant" and message.tool_calls):
            needed = "'content' or 'tool_calls'" if message.role == "assistant" else "'content'"
            raise InvalidRequestError(
                f"Missing required parameter: 'messages[{index}].content' (a {message.role} message needs {needed}).",
                param=f"messages.{index}.content",
            )


def _check_sequences(prompts: int, n: int, limits: Limits) -> None:
    """400 when prompts x ``n`` exceeds the per-request cap, naming ``n`` unless several prompts make it so."""
    if prompts * n <= limits.max_sequences:
        return
    asked = f"{prompts} prompts x n={n} = {prompts * n}" if prompts > 1 else f"n={n}"
    raise InvalidRequestError(
        f"This request asks for {asked} sequences; this server generates at most {limits.max_sequences} "
        f"sequences (prompts x n) per request.", param="n" if prompts == 1 or n > limits.max_sequences else "prompt")


def _prompt_count(prompt: Any) -> int:
    """How many prompts ``prompt`` holds, before any tokenizing (``_prompts`` validates them)."""
    if isinstance(prompt, str) or not prompt or all(isinstance(t, int) for t in prompt):
        return 1
    return len(prompt)


def _prompts(prompt: Any, tokenizer: Tokenizer, limits: Limits) -> list[tuple[list[int], str]]:
    """Each prompt's token ids and text; a string, a list of strings, a token list or a list of token lists."""
    if isinstance(prompt, str):
        items: list[Any] = [prompt]
    elif prompt and all(isinstance(t, int) for t in prompt):
        items = [prompt]
    else:
        items = list(prompt)
    if not items:
        raise InvalidRequestError("prompt must not be empty", param="prompt")
    result = []
    for item in items:
        if isinstance(item, str):
            add_bos = tokenizer.add_bos and not item.startswith(tokenizer.bos_text or "\0")
            ids = tokenizer.tokenize(item, add_special=add_bos, parse_special=False)
            text = item
        else:
            ids = list(item)
            if not all(0 <= t < limits.n_vocab for t in ids):
                raise InvalidRequestError("prompt contains a token id outside the vocabulary", param="prompt")
            text = b"".join(tokenizer.token_bytes(t) for t in ids).decode("utf-8", errors="replace")
        if not ids:
            raise InvalidRequestError("prompt must not be empty", param="prompt")
        result.append((ids, text))
    return result


def _stops(stop: str | list[str] | None, limits: Limits) -> tuple[str, ...]:
    stops = [stop] if isinstance(stop, str) else list(stop or ())
    if len(stops) > limits.max_stop_strings:
        raise InvalidRequestError(f"at most {limits.max_stop_strings} stop sequences are allowed", param="stop")
    return tuple(s for s in stops if s)


def _sampling(body: ChatCompletionRequest | CompletionRequest, prompt_ids: list[int], max_tokens: int | None,
              default: int | None, logprobs: int | None, limits: Limits, *, param: str,
              stop_ids: frozenset[int] = frozenset(), grammar: str | None = None,
              prediction: tuple[int, ...] | None = None) -> list[SamplingParams]:
    """One SamplingParams per choice; each choice gets its own seed so ``n`` choices differ."""
    max_tokens = output_budget(len(prompt_ids), max_tokens, default, limits, param=param)
    bias = _logit_bias(body.logit_bias, limits)
    temperature = 1.0 if body.temperature is None else body.temperature
    return [
        SamplingParams(
            max_tokens=max_tokens,
            temperature=temperature,
            top_p=1.0 if body.top_p is None else body.top_p,
            top_k=body.top_k or 0,
            min_p=body.min_p or 0.0,
            seed=None if body.seed is None else (body.seed + i) & 0xFFFFFFFF,
            presence_penalty=body.presence_penalty or 0.0,
            frequency_penalty=body.frequency_penalty or 0.0,
            repetition_penalty=body.repetition_penalty or 1.0,
            logit_bias=bias,
            logprobs=logprobs,
            stop_token_ids=stop_ids,
            grammar=grammar,
            prediction=prediction,
        )
        for i in range(body.n or 1)
    ]


def output_budget(prompt_len: int, max_tokens: int | None, default: int | None, limits: Limits, *,
                  param: str, name: str = "max_tokens") -> int:
    """The tokens a request may generate: its ``max_tokens`` if prompt plus that fits the context, else a 400.

    Without ``max_tokens``: ``default`` or the rest of the context, capped by ``--max-tokens-default``.
    ``param`` names the prompt field in the 400 and ``name`` the request's limit field.
    """
    room = limits.max_model_len - prompt_len
    if room < 1:
        raise ContextLengthExceededError(
            f"This model's maximum context length is {limits.max_model_len} tokens; "
            f"the prompt has {prompt_len} tokens.", param=param)
    if max_tokens is None:
        max_tokens = min(default or room, room)
        if limits.max_tokens_default is not None:
            max_tokens = min(max_tokens, limits.max_tokens_default)
    elif max_tokens > room:
        raise ContextLengthExceededError(
            f"This model's maximum context length is {limits.max_model_len} tokens. However, you requested "
            f"{prompt_len + max_tokens} tokens ({prompt_len} in the prompt, {max_tokens} for the "
            f"completion). Please reduce the prompt or {name}.", param=param)
    return max_tokens


def _logit_bias(bias: dict[str, float] | None, limits: Limits) -> tuple[tuple[int, float], ...]:
    pairs = []
    for key, value in (bias or {}).items():
        try:
            token = int(key)
        except ValueError:
            raise InvalidRequestError(f"logit_bias key {key!r} is not a token id", param="logit_bias") from None
        if not 0 <= token < limits.n_vocab:
            raise InvalidRequestError(f"logit_bias token {token} is outside the vocabulary", param="logit_bias")
        pairs.append((token, float(value)))
    return tuple(pairs)
