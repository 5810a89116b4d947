"""Protocol request -> GenerationRequest: defaults, limits and the 400s, with a scripted tokenizer."""

from __future__ import annotations

from typing import Any

import pytest

from streamserve.api.errors import APIError, ContextLengthExceededError, InvalidRequestError, NotSupportedError
from streamserve.api.params import Limits, chat_request, completion_request
from streamserve.api.protocol import ChatCompletionRequest, CompletionRequest
from streamserve.prompting.templates import TRANSCRIPT

LIMITS = Limits(max_model_len=200, n_vocab=1000, max_n=4, max_stop_strings=4, max_tokens_default=None, max_sequences=6)


class CharTokenizer:
    """One token per character (its code point modulo the vocabulary)."""

    add_bos = False
    bos_text = ""
    eos_text = ""
    control_texts: frozenset[str] = frozenset()

    def tokenize(self, text: str, *, add_special: bool, parse_special: bool) -> list[int]:
        return [ord(c) % 1000 for c in text]

    def token_bytes(self, token_id: int) -> bytes:
        return chr(token_id).encode()

    def is_eog(self, token_id: int) -> bool:
        return False


TOK = CharTokenizer()


def chat(**fields: Any) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate(
        {"model": "m", "messages": [{"role": "user", "content": "hi"}], **fields})


def completion(**fields: Any) -> CompletionRequest:
    return CompletionRequest.model_validate({"model": "m", "prompt": "hello", **fields})


def error_of(call: Any) -> APIError:
    with pytest.raises(APIError) as info:
        call()
    return info.value


def test_chat_defaults_to_the_rest_of_the_context() -> None:
    spec = chat_request(chat(), TOK, TRANSCRIPT, LIMITS)
    (choice,) = spec.choices
    assert choice.params.max_tokens == LIMITS.max_model_len - len(choice.prompt_ids)
    assert choice.params.temperature == 1.0
    assert spec.prompt_tokens == len(choice.prompt_ids)
    assert spec.stop == TRANSCRIPT.stop


def test_max_tokens_default_caps_the_default_only() -> None:
    limits = Limits(max_model_len=200, n_vocab=1000, max_n=4, max_stop_strings=4, max_tokens_default=10,
                    max_sequences=6)
    assert chat_request(chat(), TOK, TRANSCRIPT, limits).choices[0].params.max_tokens == 10
    assert chat_request(chat(max_tokens=50), TOK, TRANSCRIPT, limits).choices[0].params.max_tokens == 50


def test_max_completion_tokens_wins_over_max_tokens() -> None:
    spec = chat_request(chat(max_tokens=5, max_completion_tokens=7), TOK, TRANSCRIPT, LIMITS)
    assert spec.choices[0].params.max_tokens == 7


def test_completions_default_to_16_tokens() -> None:
    assert completion_request(completion(), TOK, LIMITS).choices[0].params.max_tokens == 16


def test_context_length_exceeded() -> None:
    err = error_of(lambda: chat_request(chat(max_tokens=500), TOK, TRANSCRIPT, LIMITS))
    assert isinstance(err, ContextLengthExceededError)
    assert (err.status_code, err.code, err.param) == (400, "context_length_exceeded", "messages")
    err = error_of(lambda: completion_request(completion(prompt="x" * 300), TOK, LIMITS))
    assert (err.code, err.param) == ("context_length_exceeded", "prompt")


def test_stream_options_need_stream() -> None:
    err = error_of(lambda: chat_request(chat(stream_options={"include_usage": True}), TOK, TRANSCRIPT, LIMITS))
    assert isinstance(err, InvalidRequestError)
    assert err.param == "stream_options"
    chat_request(chat(stream=True, stream_options={"include_usage": True}), TOK, TRANSCRIPT, LIMITS)
    chat_request(chat(stream_options=None), TOK, TRANSCRIPT, LIMITS)


def test_legacy_functions_are_refused_naming_their_param() -> None:
    err = error_of(lambda: chat_request(chat(functions=[{"name": "f"}]), TOK, TRANSCRIPT, LIMITS))
    assert isinstance(err, NotSupportedError) and err.param == "functions"


def test_a_response_format_constrains_every_choice() -> None:
    spec = chat_request(chat(n=2, response_format={"type": "json_object"}), TOK, TRANSCRIPT, LIMITS)
    assert all(c.params.grammar and "%json" in c.params.grammar for c in spec.choices)
    assert spec.tool_prefix is None and spec.opening == "text"
    assert chat_request(chat(), TOK, TRANSCRIPT, LIMITS).choices[0].params.grammar is None


def test_tools_go_into_the_prompt_and_a_required_call_opens_it() -> None:
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    limits = Limits(max_model_len=2000, n_vocab=1000, max_n=4, max_stop_strings=4, max_tokens_default=None,
                    max_sequences=6)
    plain = chat_request(chat(tools=tools, tool_choice="none"), TOK, TRANSCRIPT, limits)
    assert plain.choices[0].params.grammar is None and plain.tool_prefix is None
    spec = chat_request(chat(tools=tools, tool_choice="required"), TOK, TRANSCRIPT, limits)
    prompt = "".join(chr(t) for t in spec.choices[0].prompt_ids)
    assert "<tools>" in prompt and '"get_weather"' in prompt
    assert prompt.endswith("Assistant:<tool_call>\n")
    assert spec.tool_prefix == "<tool_call>\n" and spec.opening == "tool_call"
    assert spec.choices[0].params.grammar is not None


def test_n_has_a_server_limit_and_each_choice_its_own_seed() -> None:
    assert error_of(lambda: chat_request(chat(n=5), TOK, TRANSCRIPT, LIMITS)).param == "n"
    seeds = [c.params.seed for c in chat_request(chat(n=3, seed=7), TOK, TRANSCRIPT, LIMITS).choices]
    assert seeds == [7, 8, 9]


def test_logprobs_and_top_logprobs() -> None:
    assert error_of(lambda: chat_request(chat(top_logprobs=2), TOK, TRANSCRIPT, LIMITS)).param == "top_logprobs"
    assert chat_request(chat(logprobs=True, top_logprobs=2), TOK, TRANSCRIPT, LIMITS).choices[0].params.logprobs == 2
    assert chat_request(chat(logprobs=True), TOK, TRANSCRIPT, LIMITS).choices[0].params.logprobs == 0
    assert chat_request(chat(), TOK, TRANSCRIPT, LIMITS).choices[0].params.logprobs is None


@pytest.mark.parametrize("bias", [{"abc": 1}, {"5000": 1}, {"-1": 1}])
def test_logit_bias_keys_must_be_token_ids(bias: dict[str, float]) -> None:
    assert error_of(lambda: chat_request(chat(logit_bias=bias), TOK, TRANSCRIPT, LIMITS)).param == "logit_bias"


def test_logit_bias_is_passed_as_pairs() -> None:
    spec = chat_request(chat(logit_bias={"5": -100, "7": 2.5}), TOK, TRANSCRIPT, LIMITS)
    assert spec.choices[0].params.logit_bias == ((5, -100.0), (7, 2.5))


def test_stops_merge_user_and_template_stops() -> None:
    spec = chat_request(chat(stop=["END", ""]), TOK, TRANSCRIPT, LIMITS)
    assert spec.stop == ("END", *TRANSCRIPT.stop)
    assert completion_request(completion(stop="\n"), TOK, LIMITS).stop == ("\n",)


def test_many_prompts_give_n_choices_each() -> None:
    spec = completion_request(completion(prompt=["ab", "cde"], n=2, echo=True), TOK, LIMITS)
    assert [c.prompt_ids for c in spec.choices] == [[97, 98]] * 2 + [[99, 100, 101]] * 2
    assert [c.echo for c in spec.choices] == ["ab", "ab", "cde", "cde"]
    assert spec.prompt_tokens == 5


@pytest.mark.parametrize(("prompt", "n", "param"), [
    (["a", "b", "c", "d"], 2, "prompt"),  # 8 sequences > 6; n alone is fine
    ([[1], [2], [3], [4], [5], [6], [7]], 1, "prompt"),  # token-list prompts are counted too
    (["a", "b"], 4, "prompt"),
])
def test_prompts_times_n_has_a_per_request_cap(prompt: Any, n: int, param: str) -> None:
    """``max_sequences`` counts prompts x n (the sequences the engine runs), not n alone."""
    error = error_of(lambda: completion_request(completion(prompt=prompt, n=n), TOK, LIMITS))
    assert isinstance(error, InvalidRequestError) and error.status_code == 400
    assert error.param == param
    assert f"= {len(prompt) * n} sequences" in error.message and "at most 6" in error.message
    assert len(completion_request(completion(prompt=["a", "b", "c"], n=2), TOK, LIMITS).choices) == 6


def test_n_above_the_per_request_cap_names_n() -> None:
    limits = Limits(max_model_len=200, n_vocab=1000, max_n=8, max_stop_strings=4, max_tokens_default=None,
                    max_sequences=2)  # e.g. --max-num-seqs 1 --max-queue 1: n=3 can never fit
    assert error_of(lambda: chat_request(chat(n=3), TOK, TRANSCRIPT, limits)).param == "n"
    assert error_of(lambda: completion_request(completion(prompt=["a", "b"], n=3), TOK, limits)).param == "n"
    assert len(chat_request(chat(n=2), TOK, TRANSCRIPT, limits).choices) == 2


def test_token_id_prompts() -> None:
    spec = completion_request(completion(prompt=[104, 105]), TOK, LIMITS)
    assert spec.choices[0].prompt_ids == [104, 105]
    assert error_of(lambda: completion_request(completion(prompt=[5000]), TOK, LIMITS)).param == "prompt"
    assert error_of(lambda: completion_request(completion(prompt=""), TOK, LIMITS)).param == "prompt"


@pytest.mark.parametrize(("fields", "param"), [
    ({"suffix": "x"}, "suffix"), ({"best_of": 3}, "best_of"), ({"echo": True, "logprobs": 1}, "echo"),
    ({"max_tokens": 0}, "max_tokens"),
])
def test_completion_only_checks(fields: dict[str, Any], param: str) -> None:
    assert error_of(lambda: completion_request(completion(**fields), TOK, LIMITS)).param == param
