"""Moderation on the wire: the content_filter finish, Azure annotations, OpenAI's moderation chunk and field.

Each shape is parsed by the official client's own types and stream accumulator, so a mismatch fails here.
"""

from __future__ import annotations

import openai
import openai.types.chat
import pytest
from openai.lib.streaming.chat import ChatCompletionStreamState

from streamserve.formats.completions import CompletionBuilder, Shape
from streamserve.formats.moderation import content_filter_results
from streamserve.generation.events import Annotation, Finish, ModerationScores, TextDelta, Usage
from streamserve.moderation import CATEGORIES, ModerationResult
from tests.formats.test_completions import meta, stream

FLAG = ModerationResult(frozenset({"harassment"}), {"harassment": 1.0})
EVENTS = [
    TextDelta(0, "You are"),
    Annotation(0, ModerationResult(), 0, 7, 7),
    Annotation(0, FLAG, 7, 14, 7),
    Finish(0, "content_filter"),
    ModerationScores("streamserve-rules:r.toml", (ModerationResult(),), (FLAG,)),
    Usage(5, 3),
]


def test_chat_stream_reads_in_the_official_client() -> None:
    chunks = stream(meta(include_usage=True), EVENTS)
    state = ChatCompletionStreamState()
    for chunk in chunks:
        state.handle_chunk(openai.types.chat.ChatCompletionChunk.model_validate(chunk))
    snapshot = state.current_completion_snapshot
    assert snapshot.choices[0].message.content == "You are"
    assert snapshot.choices[0].finish_reason == "content_filter"
    with pytest.raises(openai.ContentFilterFinishReasonError):  # the SDK's own reaction to a filtered answer
        state.get_final_completion()
    scored = openai.types.chat.ChatCompletionChunk.model_validate(chunks[-2])
    assert scored.choices == [] and scored.moderation is not None
    output = scored.moderation.output
    assert output.type == "moderation_results" and output.results[0].flagged
    assert output.results[0].categories["harassment"] and set(output.results[0].categories) == set(CATEGORIES)
    assert chunks[-1]["usage"]["total_tokens"] == 8


def test_annotation_is_azure_shaped_with_an_empty_delta() -> None:
    annotation = stream(meta(), EVENTS)[3]["choices"][0]
    assert annotation["delta"] == {} and annotation["finish_reason"] is None
    assert annotation["content_filter_offsets"] == {"check_offset": 7, "start_offset": 7, "end_offset": 14}
    assert annotation["content_filter_results"]["hate"] == {"filtered": True, "severity": "high"}
    assert annotation["content_filter_results"]["sexual"] == {"filtered": False, "severity": "safe"}


def test_azure_severity_follows_the_scores() -> None:
    results = content_filter_results(ModerationResult(frozenset(), {"violence": 0.6, "sexual": 0.1}))
    assert results["violence"] == {"filtered": False, "severity": "low"}
    assert results["illicit"] == {"filtered": False, "detected": False}


def test_completion_shape_and_response_field() -> None:
    chunks = stream(meta(Shape.COMPLETION), EVENTS)
    assert chunks[2]["choices"][0]["text"] == "" and "content_filter_results" in chunks[2]["choices"][0]
    builder = CompletionBuilder(meta())
    for event in EVENTS:
        builder.add(event)
    response = openai.types.chat.ChatCompletion.model_validate(builder.build())
    assert response.choices[0].finish_reason == "content_filter"
    assert response.moderation is not None and response.moderation.input.results[0].flagged is False
