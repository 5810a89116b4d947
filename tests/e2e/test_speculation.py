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
def ngram_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server that drafts n-grams wherever they pay (``--speculative ngram``), exact or not.

    It measures what a verification costs at its own start, beside this suite's other servers (an empty cache
    directory), as every server did before the probe's findings were kept: a table kept from a start on an idle
    2-core machine can say no draft ever pays there, and this test needs drafts to compare answers."""
    cache = {"STREAMSERVE_CACHE": str(tmp_path_factory.mktemp("probe-cache"))}
    with running_server("--served-model-name", MODEL, "--speculative", "ngram", "--max-num-seqs", "2",
                        env=cache) as process:
        yield process


def _spec_counts(server: ServerProcess) -> tuple[float, float, float]:
    metrics = parse_metrics(httpx.get(server.base_url.removesuffix("/v1") + "/metrics", timeout=TIMEOUT_S).text)
    return tuple(metrics.get(name, 0.0) for name in (  # type: ignore[return-value]
        "streamserve:spec_draft_tokens_total", "streamserve:spec_accepted_tokens_total",
        "streamserve:spec_rejected_tokens_total"))


def test_ngram_drafts_short_of_256_positions_give_the_same_answers_as_none(client: OpenAI,
                                                                           ngram_server: ServerProcess) -> None:
    # Under 256 positions a verification gives one-token steps' logits here (docs/speculation.md): the
    # answers of a server drafting n-grams must be the default server's, logprobs included.
    before = _spec_counts(ngram_server)
    with OpenAI(base_url=ngram_server.base_url, api_key=API_KEY, max_retries=0, timeout=TIMEOUT_S) as ngram:
        answer = ask(ngram, logprobs=True, top_logprobs=2)
        plain = ask(client, logprobs=True, top_logprobs=2)
        assert answer.choices[0].message.content == plain.choices[0].message.content
        assert answer.choices[0].logprobs.content == plain.choices[0].logprobs.content
        assert answer.usage.completion_tokens_details is None  # n-gram drafts are not a prediction
        schema = {"type": "object", "properties": {"fruits": {"type": "array", "items": {"type": "string"}}},
                  "required": ["fruits"], "additionalProperties": False}
        response_format: Any = {"type": "json_schema", "json_schema": {"name": "fruits", "schema": schema}}
        structured = [ask(c, response_format=response_format, n=2).choices for c in (ngram, client)]
    assert [c.message.content for c in structured[0]] == [c.message.content for c in structured[1]]
    for choice in structured[0]:
        if choice.finish_reason == "stop":
            assert set(json.loads(choice.message.content)) == {"fruits"}
    drafted, accepted, rejected = (after - first for after, first in zip(_spec_counts(ngram_server), before,
                                                                          strict=True))
    assert drafted > 0 and drafted == accepted + rejected


def test_the_default_drafts_ngrams_only_where_its_probe_found_verifications_exact(http: httpx.Client,
                                                                                  server: ServerProcess) -> None:
    health = httpx.get(server.base_url.removesuffix("/v1") + "/health", timeout=TIMEOUT_S).json()
    (speculation,) = [m["speculation"] for m in health["models"].values() if "speculation" in m]
    assert speculation["ngram_drafts"] == (speculation["exact_rows"] > 1)
    before = _spec_counts(server)
    body = {"model": MODEL, "messages": MESSAGES, "max_tokens": MAX_TOKENS, "temperature": 0}
    assert http.post("/chat/completions", json=body).status_code == 200
    drafted, _, _ = (after - first for after, first in zip(_spec_counts(server), before, strict=True))
    if speculation["ngram_drafts"]:  # then within the exact rows: a draft and the last token
        assert drafted <= MAX_TOKENS
    else:  # with several threads on this llama.cpp build: no call of several rows is exact past 256 positions
        assert drafted == 0
