"""bench/client.py against the fake server: every outcome becomes a record, none raises or hangs."""

from __future__ import annotations

import asyncio
import time

from streamserve.bench.client import BenchClient
from streamserve.bench.prompts import user_prompt
from streamserve.bench.record import ReadPlan, RequestOptions, RequestRecord

from .fakeserver import ANSWER_WORDS, MODEL


def send(url: str, text: str, *, stream: bool = True, **options: object) -> RequestRecord:
    """Send one request to the fake server and return its record."""

    async def go() -> RequestRecord:
        opts = RequestOptions(**{"max_tokens": 10, "timeout": 10.0, **options})  # type: ignore[arg-type]
        async with BenchClient(url, model=MODEL, api_key="sk-test", options=opts) as client:
            return await client.send(user_prompt("p", text), stream=stream)

    return asyncio.run(go())


def test_stream_with_usage(fake_url: str) -> None:
    record = send(fake_url, "hello")
    assert record.ok, record.error
    assert record.status == 200 and record.saw_done and record.finish_reason == "length"
    assert record.text == "".join(ANSWER_WORDS[:10])
    assert record.token_source == "usage" and record.output_tokens == 10
    assert record.content_chunks == 9  # the first chunk carried two tokens
    assert record.usage_completion_tokens == 10 and record.prompt_tokens == 7
    assert record.cached_tokens == 3  # prompt_tokens_details.cached_tokens
    assert record.ttft is not None and record.last_token is not None and record.e2e is not None
    assert 0 < record.ttft <= record.last_token <= record.e2e
    assert record.chunk_times == sorted(record.chunk_times)


def test_stream_without_usage_counts_chunks(fake_url: str) -> None:
    for record in (send(fake_url, "hello [no-usage]"), send(fake_url, "hello", include_usage=False)):
        assert record.ok, record.error
        assert record.token_source == "chunks"
        assert record.output_tokens == record.content_chunks == 9
        assert record.usage_completion_tokens is None


def test_non_streamed(fake_url: str) -> None:
    record = send(fake_url, "hello", stream=False)
    assert record.ok, record.error
    assert record.text == "".join(ANSWER_WORDS[:10])
    assert record.output_tokens == 10 and record.token_source == "usage"
    assert record.ttft is None and record.chunk_times == [] and record.e2e is not None
    assert record.cached_tokens is None  # this usage has no prompt_tokens_details


def test_completions_endpoint(fake_url: str) -> None:
    streamed = send(fake_url, "hello", endpoint="completions")
    plain = send(fake_url, "hello", endpoint="completions", stream=False)
    assert streamed.ok and plain.ok, (streamed.error, plain.error)
    assert streamed.text == plain.text == "".join(ANSWER_WORDS[:10])


def test_http_500_is_a_failed_record(fake_url: str) -> None:
    for stream in (True, False):
        record = send(fake_url, "[error-500]", stream=stream)
        assert not record.ok and record.status == 500
        assert record.error is not None and "HTTP 500" in record.error and "fake server failed" in record.error


def test_dropped_connection_is_a_failed_record(fake_url: str) -> None:
    record = send(fake_url, "[drop]")
    assert not record.ok and record.error
    assert record.content_chunks == 2 and record.ttft is not None  # what arrived before the cut is kept
    assert not record.saw_done and "RemoteProtocolError" in (record.error or "")


def test_error_event_is_a_failed_record(fake_url: str) -> None:
    record = send(fake_url, "[error-event]")
    assert not record.ok
    assert record.error == "error event: server_error: engine failed"


def test_stream_without_finish_reason_is_a_failed_record(fake_url: str) -> None:
    record = send(fake_url, "[interrupted]")
    assert not record.ok and record.saw_done and record.content_chunks == 2
    assert record.error == "stream ended early: [DONE] came without a finish_reason, after 2 content chunks"


def test_timeout_bounds_a_request(fake_url: str) -> None:
    started = time.monotonic()
    record = send(fake_url, "[slow]", timeout=0.5)
    assert time.monotonic() - started < 5
    assert not record.ok and record.error == "timeout: not complete after 0.5 s"


def test_connection_refused_is_a_failed_record() -> None:
    record = send("http://127.0.0.1:9/v1", "hello", timeout=2.0)
    assert not record.ok and record.error is not None and "Connect" in record.error


def test_list_models(fake_url: str) -> None:
    async def go() -> list[str]:
        async with BenchClient(fake_url) as client:
            return await client.list_models()

    assert asyncio.run(go()) == [MODEL]


def test_body_shapes() -> None:
    prompt = user_prompt("p", "hi")
    chat = BenchClient("http://x/v1/", model="m").body(prompt, stream=True)
    assert chat["stream_options"] == {"include_usage": True} and chat["messages"][0]["content"] == "hi"
    opts = RequestOptions(endpoint="completions", include_usage=False)
    legacy = BenchClient("http://x/v1", model="m", options=opts).body(prompt, stream=True)
    assert legacy["prompt"] == "hi" and "stream_options" not in legacy and "messages" not in legacy
    assert BenchClient("http://x/v1/", options=opts).url() == "http://x/v1/completions"


def send_plan(url: str, text: str, plan: ReadPlan, **body: object) -> RequestRecord:
    """Post a raw streamed chat body to the fake server, read as ``plan`` says."""

    async def go() -> RequestRecord:
        async with BenchClient(url, model=MODEL, options=RequestOptions(timeout=10.0)) as client:
            payload = {"model": MODEL, "messages": [{"role": "user", "content": text}], "stream": True,
                       "max_tokens": 10, **body}
            return await client.send_body("chat", payload, plan=plan)

    return asyncio.run(go())


def test_keep_events_keeps_the_whole_wire(fake_url: str) -> None:
    record = send_plan(fake_url, "hello", ReadPlan(keep_events=True), stream_options={"include_usage": True})
    assert record.ok and not record.hung_up and record.comments == 1
    assert [e.data for e in record.events][-1] == "[DONE]"
    assert len(record.events) == 1 + 9 + 1 + 1 + 1  # role, content, finish, usage, [DONE]
    assert all(e.lines == (f"data: {e.data}",) and e.terminated for e in record.events)
    assert record.content_type is not None and record.content_type.startswith("text/event-stream")


def test_events_after_an_error_event_are_kept(fake_url: str) -> None:
    record = send_plan(fake_url, "[error-event]", ReadPlan(keep_events=True))
    assert not record.ok and record.error == "error event: server_error: engine failed"
    assert record.events[-1].data == "[DONE]" and "engine failed" in record.events[-2].data


def test_hang_up_after_events(fake_url: str) -> None:
    record = send_plan(fake_url, "hello", ReadPlan(keep_events=True, hangup_after_events=3))
    assert record.hung_up and not record.ok and record.error is None
    assert len(record.events) == 3 and record.hung_up_at is not None
    assert send_plan(fake_url, "hello", ReadPlan(hangup_after_events=0)).events == []
    finished_first = send_plan(fake_url, "hello", ReadPlan(keep_events=True, hangup_after_events=500))
    assert finished_first.ok and not finished_first.hung_up


def test_hang_up_after_seconds(fake_url: str) -> None:
    started = time.monotonic()
    record = send_plan(fake_url, "[slow]", ReadPlan(keep_events=True, hangup_after_s=0.3))
    assert time.monotonic() - started < 5
    assert record.hung_up and record.error is None and record.events == []
    assert record.hung_up_at is not None and 0.3 <= record.hung_up_at < 5


def test_slow_reading_still_reads_everything(fake_url: str) -> None:
    started = time.monotonic()
    record = send_plan(fake_url, "hello", ReadPlan(keep_events=True, pause_s=0.05))
    assert record.ok and len(record.events) == 12
    assert time.monotonic() - started >= 0.05 * 11
