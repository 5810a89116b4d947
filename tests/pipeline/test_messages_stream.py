"""The Messages stream through the one driver with a scripted engine: pings while the prompt is read, then
``message_start`` with the prompt cache's part, the blocks, ``message_delta``, ``message_stop``, nothing after;
a failure mid-stream is one ``error`` event; a client leaving during the wait aborts the sequence."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from typing import Any

import orjson

from streamserve.engine import EngineError, SamplingParams, SequenceOutput
from streamserve.engine.stream import SequenceStream
from streamserve.formats.anthropic import MessageFormatter, MessageMeta
from streamserve.generation.generation import start_generation
from streamserve.pipeline.driver import PINGED, stream
from tests.pipeline.test_driver import Recorder, ScriptedEngine, _outputs, _request

FAST_PINGS = dataclasses.replace(PINGED, heartbeat_s=0.01)


class SlowPromptEngine(ScriptedEngine):
    """The scripted outputs, after ``delay`` seconds of reading the prompt."""

    def __init__(self, script: Sequence[SequenceOutput | Exception], delay: float) -> None:
        super().__init__(script)
        self.delay = delay

    def submit(self, requests: Sequence[tuple[Sequence[int], SamplingParams]]) -> list[SequenceStream]:
        loop = asyncio.get_running_loop()
        streams = [SequenceStream(i, len(ids), self.aborted.append) for i, (ids, _) in enumerate(requests)]
        for stream_ in streams:
            for step, output in enumerate(self.script):
                item = output if isinstance(output, SequenceOutput) else SequenceOutput(stream_.number, error=output)
                loop.call_later(self.delay + 0.001 * step, stream_.queue.put_nowait, item)
        return streams


def _events(frames: list[bytes]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for frame in frames:
        name, data = frame.removesuffix(b"\n\n").split(b"\n")
        assert name.startswith(b"event: ") and data.startswith(b"data: ")
        payload = orjson.loads(data.removeprefix(b"data: "))
        assert payload["type"] == name.removeprefix(b"event: ").decode()
        out.append((payload["type"], payload))
    return out


async def _run(engine: ScriptedEngine) -> tuple[list[tuple[str, dict[str, Any]]], Recorder]:
    generation = start_generation(engine, _request())  # type: ignore[arg-type]
    recorder = Recorder()
    formatter = MessageFormatter(MessageMeta("msg_x", "m"), generation.usage)
    frames = [frame async for frame in stream(generation, formatter, recorder, FAST_PINGS)]
    return _events(frames), recorder


def test_pings_while_the_prompt_is_read_then_the_message_with_its_cache_reads() -> None:
    events, recorder = asyncio.run(_run(SlowPromptEngine(_outputs(5), delay=0.1)))
    names = [name for name, _ in events]
    first = names.index("message_start")
    assert first >= 2 and set(names[:first]) == {"ping"}
    assert names[first:] == ["message_start", "content_block_start", *["content_block_delta"] * 5,
                             "content_block_stop", "message_delta", "message_stop"]
    usage = events[first][1]["message"]["usage"]
    assert (usage["input_tokens"], usage["cache_read_input_tokens"]) == (1, 2)  # 3 prompt tokens, 2 cached
    text = "".join(e["delta"]["text"] for name, e in events if name == "content_block_delta")
    assert text == "Hello world!"
    assert events[-2][1]["usage"]["output_tokens"] == 5 and events[-2][1]["delta"]["stop_reason"] == "max_tokens"
    assert recorder.ends[0][0] == "length"


def test_a_failure_after_the_first_byte_is_one_error_event_and_nothing_after() -> None:
    events, recorder = asyncio.run(_run(ScriptedEngine([*_outputs(5)[:2], EngineError("decode failed")])))
    assert events[0][0] == "message_start" and events[-1][0] == "error"
    assert events[-1][1]["error"]["type"] == "api_error"
    assert "message_stop" not in [name for name, _ in events] and recorder.ends[0][0] == "error"


def test_a_client_that_leaves_while_the_prompt_is_read_aborts_the_sequence() -> None:
    engine = SlowPromptEngine(_outputs(5), delay=0.2)
    recorder = Recorder()

    async def main() -> None:
        generation = start_generation(engine, _request())  # type: ignore[arg-type]
        frames = stream(generation, MessageFormatter(MessageMeta("msg_x", "m"), generation.usage), recorder,
                        FAST_PINGS)
        assert b"event: ping" in await anext(frames)
        await frames.aclose()

    asyncio.run(main())
    assert engine.aborted == [0] and recorder.ends[0][0] == "disconnect"
