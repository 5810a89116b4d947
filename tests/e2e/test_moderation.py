"""Moderated streams end to end: real model, real servers on 127.0.0.1, the official client and LangChain.

The blocking server runs the rules policy; its flagged words are ones the model really writes
greedily: it counts "9, 10, 11, 12, 13" after "1, …, 8," (SmolLM2 writes digits one token each,
so "13" arrives split across two tokens), and answers "What is the capital of France?" in French
with "la femme". Reference texts come from the unmoderated session server: same model, greedy,
run alone. An async server runs the rules; a third runs the shipped classifier and the default
model as guard model (to prove the path, not to judge).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from tests.e2e.ssewire import SSEStream, read_stream
from tests.serverproc import ServerProcess, running_server

pytestmark = pytest.mark.e2e

MODEL = "smollm2-135m-instruct"
RULES = """\
[violence]
patterns = ["\\\\b13\\\\b"]

[harassment]
words = ["femme", "idiot"]
"""
COUNTING = {"model": MODEL, "prompt": "1, 2, 3, 4, 5, 6, 7, 8,", "max_tokens": 40, "temperature": 0}
FRANCE = [{"role": "user", "content": "What is the capital of France?"}]
SAFE = [{"role": "user", "content": "Say hello."}]
WINDOW = 200


@pytest.fixture(scope="module")
def rules_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("moderation") / "rules.toml"
    path.write_text(RULES)
    return path


@pytest.fixture(scope="module")
def blocking(rules_file: Path) -> Iterator[ServerProcess]:
    with running_server("--moderation", "blocking", "--moderation-rules", str(rules_file),
                        "--moderation-window", str(WINDOW)) as process:
        yield process


@pytest.fixture(scope="module")
def moderated(blocking: ServerProcess) -> Iterator[OpenAI]:
    with OpenAI(base_url=blocking.base_url, api_key="sk-test", max_retries=0, timeout=120) as openai_client:
        yield openai_client


@pytest.fixture(scope="module")
def raw(blocking: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=blocking.base_url, timeout=120) as http_client:
        yield http_client


def completion_text(stream: SSEStream) -> str:
    return "".join(c["text"] for chunk in stream.chunks for c in chunk["choices"])


def finish_reasons(stream: SSEStream) -> list[str]:
    return [c["finish_reason"] for chunk in stream.chunks for c in chunk["choices"] if c["finish_reason"]]


def without_ids(stream: SSEStream) -> list[dict[str, Any]]:
    """The chunks without what differs between two servers: ids, times, and how much prompt each had cached."""
    chunks = [{k: v for k, v in chunk.items() if k not in ("id", "created", "system_fingerprint")}
              for chunk in stream.chunks]
    for chunk in chunks:
        if chunk.get("usage") and chunk["usage"].get("prompt_tokens_details"):
            chunk["usage"]["prompt_tokens_details"].pop("cached_tokens", None)
    return chunks


def test_blocked_stream_ends_in_the_wire_terms(raw: httpx.Client, http: httpx.Client) -> None:
    body = {**COUNTING, "stream_options": {"include_usage": True}}
    reference = completion_text(read_stream(http, "/completions", body))
    assert " 13," in reference  # the model really writes it, so the check below can fail
    stream = read_stream(raw, "/completions", body)
    text = completion_text(stream)
    cut = reference.index(" 13,")
    assert reference.startswith(text) and len(text) <= cut + 1  # not even the "1" of "13"
    assert finish_reasons(stream) == ["content_filter"]
    assert stream.chunks[-1]["choices"] == [] and stream.chunks[-1]["usage"]["completion_tokens"] < 40
    assert stream.saw_done and stream.raw_events[-1] == b"data: [DONE]"


def test_unflagged_stream_is_identical_to_unmoderated(raw: httpx.Client, http: httpx.Client) -> None:
    body = {"model": MODEL, "messages": SAFE, "max_tokens": 24, "temperature": 0,
            "stream_options": {"include_usage": True}}
    plain = read_stream(http, "/chat/completions", body)
    moderated = read_stream(raw, "/chat/completions", body)
    assert finish_reasons(plain) == finish_reasons(moderated) != ["content_filter"]
    assert without_ids(moderated) == without_ids(plain)


def test_flagged_prompt_is_a_400(moderated: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        moderated.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "you 1d10t"}],
                                          max_tokens=4)
    error = info.value.body
    assert isinstance(error, dict) and error["code"] == "content_filter" and error["param"] == "messages"
    with pytest.raises(openai.BadRequestError, match="harassment"):
        moderated.completions.create(model=MODEL, prompt="an IDIOT wrote", max_tokens=4)


def test_moderations_endpoint(moderated: OpenAI) -> None:
    one = moderated.moderations.create(input="what an idiot", model="omni-moderation-latest")
    assert one.id.startswith("modr-") and len(one.results) == 1
    result = one.results[0]
    assert result.flagged and result.categories.harassment and result.category_scores.harassment == 1.0
    assert len(result.model_dump(by_alias=True)["categories"]) == 13
    many = moderated.moderations.create(input=["a fine day", "it is 13 o'clock", "femme fatale"])
    assert [r.flagged for r in many.results] == [False, True, True]
    assert many.results[1].categories.violence and not many.results[1].categories.harassment
    assert many.results[0].category_applied_input_types.violence == ["text", "image"]


def test_official_client_reads_a_blocked_chat_stream(moderated: OpenAI, client: OpenAI) -> None:
    reference = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model=MODEL, messages=FRANCE, max_tokens=40, temperature=0, stream=True) if c.choices)
    assert "femme" in reference
    chunks = list(moderated.chat.completions.create(model=MODEL, messages=FRANCE, max_tokens=40, temperature=0,
                                                    stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert reference.startswith(text) and "femme" not in text and not re.search(r"\bf(e(m(m)?)?)?$", text)
    assert chunks[-1].choices[0].finish_reason == "content_filter"


def test_moderation_field_scores_in_a_choiceless_chunk(moderated: OpenAI) -> None:
    stream = moderated.chat.completions.create(model=MODEL, messages=SAFE, max_tokens=12, temperature=0,
                                               stream=True, stream_options={"include_usage": True},
                                               moderation={"model": "omni-moderation-latest"})
    chunks = list(stream)
    assert chunks[-1].usage is not None and chunks[-1].choices == []
    scored = chunks[-2]
    assert scored.choices == [] and scored.moderation is not None
    assert scored.moderation.input.type == "moderation_results"
    assert scored.moderation.output.type == "moderation_results"
    assert len(scored.moderation.output.results) == 1 and not scored.moderation.output.results[0].flagged
    assert [c for c in chunks if c.choices][-1].choices[0].finish_reason in ("stop", "length")
    whole = moderated.chat.completions.create(model=MODEL, messages=FRANCE, max_tokens=40, temperature=0,
                                              moderation={"model": "omni-moderation-latest"})
    assert whole.choices[0].finish_reason == "content_filter" and "femme" not in whole.choices[0].message.content
    assert whole.moderation is not None and whole.moderation.output.results[0].flagged


def test_langchain_reads_moderated_streams(blocking: ServerProcess) -> None:
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(base_url=blocking.base_url, api_key="sk-test", model=MODEL, temperature=0, max_tokens=40,
                     max_retries=0, stream_usage=True)
    chunks = list(llm.stream("What is the capital of France?"))
    text = "".join(str(c.content) for c in chunks)
    assert "femme" not in text
    assert any(c.response_metadata.get("finish_reason") == "content_filter" for c in chunks)
    safe = list(llm.stream("Say hello."))
    assert "".join(str(c.content) for c in safe)


def test_metrics(blocking: ServerProcess) -> None:
    text = httpx.get(blocking.url + "/metrics").text
    checks = re.search(r'streamserve:moderation_checks_total\{policy="streamserve-rules:rules.toml"\} (\S+)', text)
    assert checks and float(checks.group(1)) > 10
    assert re.search(r'streamserve:moderation_flags_total\{category="violence"\} [1-9]', text)
    assert "streamserve:moderation_holdback_characters_bucket" in text
    assert "streamserve:moderation_holdback_seconds_count" in text


@pytest.fixture(scope="module")
def asynchronous(rules_file: Path) -> Iterator[ServerProcess]:
    with running_server("--moderation", "async", "--moderation-rules", str(rules_file),
                        "--moderation-window", "64") as process:
        yield process


def test_async_stream_flows_and_ends_within_the_window(asynchronous: ServerProcess, http: httpx.Client) -> None:
    reference = completion_text(read_stream(http, "/completions", COUNTING))
    with httpx.Client(base_url=asynchronous.base_url, timeout=300) as raw_async:
        stream = read_stream(raw_async, "/completions", COUNTING)
    text = completion_text(stream)
    end = reference.index(" 13,") + 3
    assert reference.startswith(text) and end <= len(text) <= end + 64
    assert finish_reasons(stream) == ["content_filter"]
    annotations = [c for chunk in stream.chunks for c in chunk["choices"] if "content_filter_offsets" in c]
    assert annotations and annotations[-1]["content_filter_results"]["violence"]["filtered"]
    checks = [a["content_filter_offsets"]["check_offset"] for a in annotations]
    assert checks == sorted(checks)


@pytest.fixture(scope="module")
def guarded() -> Iterator[ServerProcess]:
    with running_server("--moderation-classifier", "profanity", "--moderation-model", MODEL,
                        "--moderation-window", "64") as process:
        yield process


def test_guard_model_path_end_to_end(guarded: ServerProcess) -> None:
    """The default model as guard proves the path (engine sequences, strict parse), not judgement quality."""
    with OpenAI(base_url=guarded.base_url, api_key="sk-test", max_retries=0, timeout=300) as guard_client:
        response = guard_client.moderations.create(input=["Hello there, friend.", "you stupid fucking moron"])
        assert f"guard:{MODEL}" in response.model and "alt-profanity-check" in response.model
        assert response.results[1].flagged and response.results[1].category_scores.harassment >= 0.9
        stream = guard_client.chat.completions.create(
            model=MODEL, messages=SAFE, max_tokens=12, temperature=0, stream=True,
            moderation={"model": "guard", "policy": {"output": {"mode": "block"}}})
        chunks = list(stream)
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish and finish[-1] in ("stop", "length", "content_filter")
    assert chunks[-1].moderation is not None and len(chunks[-1].moderation.output.results) == 1
    text = httpx.get(guarded.url + "/metrics").text
    guard_checks = re.search(rf'streamserve:moderation_checks_total\{{policy="guard:{MODEL}"\}} (\S+)', text)
    assert guard_checks and float(guard_checks.group(1)) >= 3
