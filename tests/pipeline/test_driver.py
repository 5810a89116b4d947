"""The one driver with a scripted engine, no model: every wire format's stream, its framing, and its failure.

A ``ScriptedEngine`` hands out real ``SequenceStream``s and feeds them scripted token events (or an error)
on the event loop, as the engine client does; the generation, the formatters and the framing are the
server's own. So the bytes a client receives are checked here in milliseconds; the end-to-end tests
prove the same with the real model.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import orjson
import pytest

from streamserve.engine import EngineError, EngineStoppedError, FinishReason, SamplingParams, SequenceOutput, TokenEvent
from streamserve.engine.stream import SequenceStream
from streamserve.formats.completions import ChunkFormatter, CompletionBuilder, CompletionMeta, Shape, error_body
from streamserve.formats.responses import ENGINE_FAILURE_MESSAGE, SHUTDOWN_MESSAGE, ResponseFormatter, ResponseMeta
from streamserve.generation.events import Usage
from streamserve.generation.generation import ChoiceRequest, GenerationRequest, start_generation
from streamserve.pipeline.driver import DATA_ONLY, NAMED, collect, stream
from tests.formats.test_responses import FIELDS

PIECES = [b"Hel", b"lo", b" w", b"orld", b"!"]


class Tokenizer:
    """Token i is ``PIECES[i]``."""

    add_bos = False
    bos_text = ""
    eos_text = ""
    control_texts: frozenset[str] = frozenset()

    def tokenize(self, text: str, *, add_special: bool, parse_special: bool) -> list[int]:
        raise NotImplementedError

    def token_bytes(self, token_id: int) -> bytes:
        return PIECES[token_id]

    def is_eog(self, token_id: int) -> bool:
        return False


class ScriptedEngine:
    """Each submitted sequence gets the scripted outputs, one step apart; ``aborted`` records closed ones."""

    tokenizer = Tokenizer()

    def __init__(self, script: Sequence[SequenceOutput | Exception]) -> None:
        self.script = script
        self.aborted: list[int] = []

    def submit(self, requests: Sequence[tuple[Sequence[int], SamplingParams]]) -> list[SequenceStream]:
        loop = asyncio.get_running_loop()
        streams = [SequenceStream(i, len(ids), self.aborted.append) for i, (ids, _) in enumerate(requests)]
        for stream_ in streams:
            for step, output in enumerate(self.script):
                item = output if isinstance(output, SequenceOutput) else SequenceOutput(stream_.number, error=output)
                loop.call_later(0.001 * step, stream_.queue.put_nowait, item)
        return streams


class Recorder:
    """An observer that records what it was told."""

    def __init__(self) -> None:
        self.texts = 0
        self.ends: list[tuple[str, Usage | None]] = []

    def on_text(self) -> None:
        self.texts += 1

    def on_end(self, outcome: str, usage: Usage | None) -> None:
        self.ends.append((outcome, usage))


def _outputs(tokens: int, *, finish: FinishReason = FinishReason.LENGTH) -> list[SequenceOutput]:
    return [SequenceOutput(0, (TokenEvent(i, finish=finish if i == tokens - 1 else None),), cached_tokens=2)
            for i in range(tokens)]


def _request(max_tokens: int = 5) -> GenerationRequest:
    return GenerationRequest([ChoiceRequest([7, 8, 9], SamplingParams(max_tokens=max_tokens))], (), 3)


async def _bytes(engine: ScriptedEngine, formatter: Any, framing: Any) -> tuple[list[bytes], Recorder]:
    generation = start_generation(engine, _request())  # type: ignore[arg-type]
    recorder = Recorder()
    frames = [frame async for frame in stream(generation, formatter, recorder, framing)]
    return frames, recorder


def _chat_meta(include_usage: bool = True) -> CompletionMeta:
    return CompletionMeta(Shape.CHAT, "chatcmpl-x", 1, "m", 1, include_usage, "fp", "text")


def _data(frame: bytes) -> Any:
    assert frame.startswith(b"data: ") and frame.endswith(b"\n\n")
    return orjson.loads(frame[len(b"data: ") : -2])


def test_a_chat_stream_is_role_text_finish_usage_then_done() -> None:
    engine = ScriptedEngine(_outputs(5))
    frames, recorder = asyncio.run(_bytes(engine, ChunkFormatter(_chat_meta()), DATA_ONLY))
    assert frames[-1] == b"data: [DONE]\n\n"
    chunks = [_data(f) for f in frames[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "Hello world!"
    finish = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert [c["choices"][0]["finish_reason"] for c in finish] == ["length"] and finish[0]["choices"][0]["delta"] == {}
    usage = chunks[-1]["usage"]
    assert chunks[-1]["choices"] == [] and (usage["prompt_tokens"], usage["completion_tokens"]) == (3, 5)
    assert usage["total_tokens"] == 8 and usage["prompt_tokens_details"]["cached_tokens"] == 2
    assert all(c["usage"] is None for c in chunks[:-1])
    assert recorder.texts >= 4 and recorder.ends[0][0] == "length"


@pytest.mark.parametrize(("error", "message"), [(EngineError("decode failed"), "decode failed"),
                                                (EngineStoppedError("the server is shutting down"),
                                                 "the server is shutting down")])
def test_a_failure_after_the_first_byte_is_one_error_event_then_done(error: Exception, message: str) -> None:
    engine = ScriptedEngine([*_outputs(5)[:2], error])
    frames, recorder = asyncio.run(_bytes(engine, ChunkFormatter(_chat_meta()), DATA_ONLY))
    assert frames[-1] == b"data: [DONE]\n\n"
    assert _data(frames[-2]) == error_body(message)
    assert set(_data(frames[-2])) == {"error"}
    assert recorder.ends[0][0] == "error"


@pytest.mark.parametrize(("error", "message"), [(EngineError("boom"), ENGINE_FAILURE_MESSAGE),
                                                (EngineStoppedError("stop"), SHUTDOWN_MESSAGE)])
def test_responses_events_are_named_and_a_failure_ends_them_with_response_failed(error: Exception,
                                                                                message: str) -> None:
    formatter = ResponseFormatter(ResponseMeta("resp_x", 1, "m", False, FIELDS))
    frames, _ = asyncio.run(_bytes(ScriptedEngine([*_outputs(5)[:2], error]), formatter, NAMED))
    assert not any(f.startswith(b"data: [DONE]") for f in frames)
    names = [f.split(b"\n")[0].removeprefix(b"event: ").decode() for f in frames]
    assert names[:2] == ["response.created", "response.in_progress"] and names[-1] == "response.failed"
    body = orjson.loads(frames[-1].split(b"\ndata: ")[1])
    assert body["response"]["error"]["message"] == message
    assert [orjson.loads(f.split(b"\ndata: ")[1])["sequence_number"] for f in frames] == list(range(len(frames)))


def test_collect_builds_the_whole_object_from_the_same_events() -> None:
    async def main() -> dict[str, Any]:
        generation = start_generation(ScriptedEngine(_outputs(5)), _request())  # type: ignore[arg-type]
        return await collect(generation, CompletionBuilder(_chat_meta(include_usage=False)), Recorder())

    result = asyncio.run(main())
    assert result["object"] == "chat.completion" and result["choices"][0]["message"]["content"] == "Hello world!"
    assert result["usage"]["completion_tokens"] == 5 and result["choices"][0]["finish_reason"] == "length"


def test_a_consumer_that_stops_early_aborts_the_sequence() -> None:
    engine = ScriptedEngine(_outputs(5))

    async def main() -> None:
        generation = start_generation(engine, _request())  # type: ignore[arg-type]
        frames = stream(generation, ChunkFormatter(_chat_meta()), Recorder(), DATA_ONLY)
        await anext(frames)
        await frames.aclose()

    asyncio.run(main())
    assert engine.aborted == [0]
