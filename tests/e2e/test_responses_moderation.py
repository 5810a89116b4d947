"""Moderated Responses streams: a real server with ``--moderation blocking`` and the rules policy.

As in ``test_moderation.py``, the flagged word is one the model really writes greedily: it answers
"What is the capital of France?" in French with "la femme". A blocked response ends with
``response.incomplete`` and ``incomplete_details.reason: "content_filter"``; the flagged word, and
any start of it, never reaches the client; the stored response and its replayed events end the same way.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai import OpenAI

from tests.serverproc import ServerProcess, running_server

pytestmark = pytest.mark.e2e

MODEL = "smollm2-135m-instruct"
RULES = """\
[harassment]
words = ["femme", "idiot"]
"""
FRANCE = "What is the capital of France?"
WORD = "femme"


@pytest.fixture(scope="module")
def blocking(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    rules = tmp_path_factory.mktemp("moderation") / "rules.toml"
    rules.write_text(RULES)
    with running_server("--moderation", "blocking", "--moderation-rules", str(rules)) as process:
        yield process


@pytest.fixture(scope="module")
def client(blocking: ServerProcess) -> Iterator[OpenAI]:
    with OpenAI(base_url=blocking.base_url, api_key="sk-test", max_retries=0, timeout=120) as openai_client:
        yield openai_client


def deltas(events: list[Any]) -> list[str]:
    return [e.delta for e in events if e.type == "response.output_text.delta"]


def assert_no_start_of_the_word(text: str) -> None:
    """Neither the word nor its first characters (``fe``, ``fem``…) at the end of what was released."""
    assert WORD not in text
    assert not any(text.endswith(WORD[:n]) for n in range(2, len(WORD)))


def test_a_blocked_stream_ends_incomplete_with_content_filter_and_never_sends_the_word(client: OpenAI) -> None:
    with client.responses.stream(model=MODEL, input=FRANCE, temperature=0, max_output_tokens=60) as stream:
        events = list(stream)
    final = events[-1]
    assert final.type == "response.incomplete"
    assert final.response.incomplete_details is not None
    assert final.response.incomplete_details.reason == "content_filter"
    joined = "".join(deltas(events))
    assert joined and joined == final.response.output_text
    assert_no_start_of_the_word(joined)
    assert final.response.output[0].status == "incomplete"
    stored = client.responses.retrieve(final.response.id)
    assert stored.status == "incomplete" and stored.incomplete_details is not None
    assert stored.incomplete_details.reason == "content_filter" and stored.output_text == joined


def test_the_moderation_field_reports_the_scores_on_the_response(client: OpenAI) -> None:
    response = client.responses.create(model=MODEL, input=FRANCE, temperature=0, max_output_tokens=60,
                                       moderation={"model": "omni-moderation-latest"})
    assert response.status == "incomplete" and response.incomplete_details is not None
    assert response.incomplete_details.reason == "content_filter"
    assert response.moderation is not None
    assert response.moderation.output.type == "moderation_result" and response.moderation.output.flagged
    assert response.moderation.output.categories["harassment"]
    assert response.moderation.input.type == "moderation_result" and not response.moderation.input.flagged
    assert_no_start_of_the_word(response.output_text)


def test_a_blocked_background_response_is_stored_and_replayed_the_same_way(client: OpenAI) -> None:
    queued = client.responses.create(model=MODEL, input=FRANCE, temperature=0, max_output_tokens=60, background=True)
    deadline = time.monotonic() + 120
    while (got := client.responses.retrieve(queued.id)).status in ("queued", "in_progress"):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert got.status == "incomplete" and got.incomplete_details is not None
    assert got.incomplete_details.reason == "content_filter"
    replayed = list(client.responses.retrieve(queued.id, stream=True))
    assert replayed[-1].type == "response.incomplete"
    assert [e.sequence_number for e in replayed] == list(range(len(replayed)))
    assert "".join(deltas(replayed)) == got.output_text
    assert_no_start_of_the_word(got.output_text)


def test_an_unflagged_answer_completes(client: OpenAI) -> None:
    response = client.responses.create(model=MODEL, input="Say hello.", temperature=0, max_output_tokens=16)
    assert response.status in ("completed", "incomplete") and response.output_text
    if response.incomplete_details is not None:
        assert response.incomplete_details.reason == "max_output_tokens"


def test_a_flagged_input_is_a_400_naming_input(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model=MODEL, input="You are an idiot.", max_output_tokens=16)
    assert info.value.body["code"] == "content_filter" and info.value.body["param"] == "input"
    with pytest.raises(openai.BadRequestError) as info:  # a tool result is user-side text too
        client.responses.create(model=MODEL, max_output_tokens=16, input=[
            {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "what an idiot"}])
    assert info.value.body["code"] == "content_filter"
