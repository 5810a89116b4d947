"""Predicted Outputs and n-gram speculation through the official client: same answers, usage counts.

The prediction is the model's own greedy answer, asked first without one (the shipped models do not
copy text they are asked to repeat, so only their own answer is a prediction they agree with). Greedy
output must be the same with and without it, streamed or not, with stop strings and logprobs; the
usage says how many predicted tokens were accepted and rejected.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from openai import OpenAI

from streamserve.bench.prometheus import parse_metrics
from tests.e2e.conftest import API_KEY, TIMEOUT_S
from tests.e2e.ssewire import MODEL
from tests.serverproc import ServerProcess, running_server

MESSAGES = [{"role": "user", "content": "List five fruits, one per line, each as 'Fruit N: name'."}]
MAX_TOKENS = 40


def ask(client: OpenAI, **extra: Any) -> Any:
    return client.chat.completions.create(model=MODEL, messages=MESSAGES, temperature=0,  # type: ignore[arg-type]
                                          max_tokens=MAX_TOKENS, **extra)


def ask_streamed(client: OpenAI, **extra: Any) -> tuple[str, list[Any], Any]:
    """The joined text, the logprobs entries and the usage of a streamed answer."""
    text, entries, usage = "", [], None
    with client.chat.completions.create(model=MODEL, messages=MESSAGES, temperature=0,  # type: ignore[arg-type]
                                        max_tokens=MAX_TOKENS, stream=True,
                                        stream_options={"include_usage": True}, **extra) as stream:
        for chunk in stream:
            if chunk.usage is not None:
                usage = chunk.usage
            for choice in chunk.choices:
                text += choice.delta.content or ""
                if choice.logprobs is not None and choice.logprobs.content:
                    entries += choice.logprobs.content
    return text, entries, usage


@pytest.fixture(scope="module")
def own(client: OpenAI) -> Any:
    """The model's greedy answer without a prediction (logprobs on, so they can be compared)."""
    answer = ask(client, logprobs=True, top_logprobs=2)
    assert answer.usage.completion_tokens_details is None  # no prediction: no prediction counts
    return answer


def test_a_whole_answer_with_its_own_prediction_is_the_same_and_says_what_was_accepted(client: OpenAI,
                                                                                      own: Any) -> None:
    text = own.choices[0].message.content
    answer = ask(client, logprobs=True, top_logprobs=2, prediction={"type": "content", "content": text})
    assert answer.choices[0].message.content == text
    assert answer.choices[0].logprobs.content == own.choices[0].logprobs.content
    assert answer.choices[0].finish_reason == own.choices[0].finish_reason
    details = answer.usage.completion_tokens_details
    assert details.accepted_prediction_tokens >= own.usage.completion_tokens // 2
    assert details.rejected_prediction_tokens <= 1  # at most a draft past the end of the answer
    assert answer.usage.completion_tokens == own.usage.completion_tokens


def test_a_streamed_answer_with_an_edited_prediction_in_text_parts_is_the_same(client: OpenAI, own: Any) -> None:
    text = own.choices[0].message.content
    lines = text.split("\n")
    lines[len(lines) // 2] = "Something else entirely: a changed line"
    parts = [{"type": "text", "text": "\n".join(lines[:2]) + "\n"}, {"type": "text", "text": "\n".join(lines[2:])}]
    streamed, entries, usage = ask_streamed(client, logprobs=True, top_logprobs=2,
                                            prediction={"type": "content", "content": parts})
    assert streamed == text
    assert entries == own.choices[0].logprobs.content
    details = usage.completion_tokens_details
    assert details.accepted_prediction_tokens > 0 and details.rejected_prediction_tokens > 0
    assert usage.completion_tokens == own.usage.completion_tokens


def test_a_stop_string_with_a_prediction_cuts_where_it_cuts_without(client: OpenAI, own: Any) -> None:
    text = own.choices[0].message.content
    stop = text.split("\n")[2][:8]
    plain = ask(client, stop=[stop])
    predicted = ask(client, stop=[stop], prediction={"type": "content", "content": text})
    assert predicted.choices[0].message.content == plain.choices[0].message.content
    assert predicted.choices[0].finish_reason == plain.choices[0].finish_reason == "stop"
    assert predicted.usage.completion_tokens == plain.usage.completion_tokens


def test_n_choices_and_penalties_are_accepted_with_a_prediction(client: OpenAI, own: Any) -> None:
    text = own.choices[0].message.content
    answer = ask(client, n=2, presence_penalty=0.5, prediction={"type": "content", "content": text})
    plain = ask(client, n=2, presence_penalty=0.5)
    assert [c.message.content for c in answer.choices] == [c.message.content for c in plain.choices]
    assert answer.usage.completion_tokens_details.accepted_prediction_tokens > 0


def test_a_malformed_prediction_is_a_400(http: httpx.Client) -> None:
    body = {"model": MODEL, "messages": MESSAGES, "max_tokens": 4, "prediction": {"type": "other", "content": "x"}}
    response = http.post("/chat/completions", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["param"].startswith("prediction")


@pytest.fixture(scope="module")
def ngram_client() -> Iterator[tuple[OpenAI, ServerProcess]]:
    """A server drafting from n-grams of each prompt and output."""
    with running_server("--served-model-name", MODEL, "--speculative", "ngram", "--max-num-seqs", "2") as process, \
            OpenAI(base_url=process.base_url, api_key=API_KEY, max_retries=0, timeout=TIMEOUT_S) as openai_client:
        yield openai_client, process


def test_ngram_speculation_gives_the_same_answers(client: OpenAI, own: Any,
                                                  ngram_client: tuple[OpenAI, ServerProcess]) -> None:
    ngram, process = ngram_client
    answer = ask(ngram, logprobs=True, top_logprobs=2)
    assert answer.choices[0].message.content == own.choices[0].message.content
    assert answer.choices[0].logprobs.content == own.choices[0].logprobs.content
    assert answer.usage.completion_tokens_details is None  # n-gram drafts are not a prediction
    schema = {"type": "object", "properties": {"fruits": {"type": "array", "items": {"type": "string"}}},
              "required": ["fruits"], "additionalProperties": False}
    response_format: Any = {"type": "json_schema", "json_schema": {"name": "fruits", "schema": schema}}
    structured = [ask(c, response_format=response_format, n=2).choices for c in (client, ngram)]
    assert [c.message.content for c in structured[0]] == [c.message.content for c in structured[1]]
    for choice in structured[1]:
        if choice.finish_reason == "stop":
            assert set(json.loads(choice.message.content)) == {"fruits"}
    metrics = httpx.get(process.base_url.removesuffix("/v1") + "/metrics", timeout=TIMEOUT_S).text
    drafted = _counter(metrics, "streamserve:spec_draft_tokens_total")
    accepted = _counter(metrics, "streamserve:spec_accepted_tokens_total")
    rejected = _counter(metrics, "streamserve:spec_rejected_tokens_total")
    assert drafted > 0 and drafted == accepted + rejected


def _counter(text: str, name: str) -> float:
    values = parse_metrics(text)  # the server's total over its models
    assert name in values, f"{name} not in /metrics"
    return values[name]
