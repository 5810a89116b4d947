"""One benchmark request, streamed or not, against any OpenAI-compatible server.

``BenchClient.send()`` never raises for a failed request: every outcome, an HTTP error, an error
event, a dropped connection or a timeout, comes back as a ``RequestRecord`` with ``ok=False`` and the
reason in ``error``. Every request runs under an overall deadline (``timeout``), so none can hang a run.
``send_body()`` posts any body and takes a ``ReadPlan``: keep every event for a wire checker, read
slowly, or hang up early (the soak benchmark's clients).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass, field
from types import TracebackType
from typing import Any, Literal

import httpx
import orjson

from .prompts import Endpoint, Prompt
from .sse import MalformedEventError, SSEEvent, SSEReader, StreamError, error_message

TokenSource = Literal["usage", "chunks", "none"]


class RequestFailedError(Exception):
    """A request failed in a way the server or the wire made plain (HTTP status, early end)."""


@dataclass
class RequestRecord:
    """Everything measured about one request. Times are seconds.

    ``start`` is relative to the caller's epoch; ``ttft``, ``last_token``, ``e2e`` and every entry of
    ``chunk_times`` are relative to ``start``. ``chunk_times`` has one entry per chunk that carried
    content (role-only and finish chunks are not counted). ``e2e`` is when the answer was complete
    (``[DONE]`` for a stream, the full body otherwise), or when the request failed.
    ``cached_tokens`` is the usage's ``prompt_tokens_details.cached_tokens`` (prompt tokens the server
    took from its prompt cache), None when the server did not say.
    ``output_tokens`` comes from the server's usage when it sent one (``token_source="usage"``),
    otherwise from the counted content chunks (``"chunks"``); ``"none"`` means no count was possible.
    """

    stream: bool
    prompt: str = ""
    ok: bool = False
    error: str | None = None
    status: int | None = None
    start: float = 0.0
    ttft: float | None = None
    last_token: float | None = None
    e2e: float | None = None
    chunk_times: list[float] = field(default_factory=list)
    text: str = ""
    output_tokens: int = 0
    token_source: TokenSource = "none"
    content_chunks: int = 0
    prompt_tokens: int | None = None
    cached_tokens: int | None = None
    usage_completion_tokens: int | None = None
    finish_reason: str | None = None
    saw_done: bool = False
    request_id: str | None = None
    content_type: str | None = None
    error_body: Any = None
    """The parsed JSON body of a failed (non-2xx) response, when it was JSON."""
    events: list[SSEEvent] = field(default_factory=list)
    """Every event of the stream, ``[DONE]`` and anything after it included (``ReadPlan.keep_events``)."""
    comments: int = 0
    hung_up: bool = False
    """The client closed the connection on purpose (``ReadPlan``); such a record is not ``ok``."""
    hung_up_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field, raw timings included."""
        return asdict(self)


@dataclass(frozen=True)
class RequestOptions:
    """How requests are sent: endpoint, sampling defaults, usage chunk, and the per-request timeout."""

    endpoint: Endpoint = "chat"
    max_tokens: int | None = 128
    temperature: float | None = 0.0
    include_usage: bool = True
    timeout: float = 120.0


@dataclass(frozen=True)
class ReadPlan:
    """How one stream is read: keep its events, pause after each event, or hang up on purpose.

    ``hangup_after_events`` closes the connection once that many events have arrived (0: as soon
    as the response headers are in); ``hangup_after_s`` closes it that many seconds after sending,
    whatever has arrived by then. A stream that ends first is simply complete.
    """

    keep_events: bool = False
    pause_s: float = 0.0
    hangup_after_events: int | None = None
    hangup_after_s: float | None = None


class _HungUp(Exception):
    """Internal: the read plan's hang-up point was reached."""


class BenchClient:
    """An httpx client bound to one server, one model and one set of request options.

    Use it as an async context manager; ``send()`` runs one request and returns its record.
    """

    def __init__(
        self,
        base_url: str,
        *,
        model: str = "",
        api_key: str | None = None,
        options: RequestOptions | None = None,
        max_connections: int = 64,
    ) -> None:
        """Prepare a client for ``base_url`` (ending in ``/v1``); no connection is opened yet."""
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.options = options or RequestOptions()
        headers = {"Content-Type": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        timeout = httpx.Timeout(self.options.timeout, connect=min(10.0, self.options.timeout))
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._http = httpx.AsyncClient(headers=headers, timeout=timeout, limits=limits)

    async def __aenter__(self) -> BenchClient:
        """Enter: the client is ready."""
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close every connection."""
        await self.aclose()

    async def aclose(self) -> None:
        """Close every connection."""
        await self._http.aclose()

    async def list_models(self) -> list[str]:
        """The model ids of ``GET /models``; raises ``RequestFailedError`` if the server will not say."""
        try:
            response = await self._http.get(self.base_url + "/models")
        except httpx.HTTPError as exc:
            raise RequestFailedError(f"GET {self.base_url}/models: {type(exc).__name__}: {exc}") from exc
        if response.status_code >= 400:
            raise RequestFailedError(f"GET {self.base_url}/models: {_status_message(response)}")
        try:
            payload = orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            raise RequestFailedError(f"GET {self.base_url}/models: not JSON") from exc
        data = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(data, list):
            raise RequestFailedError(f"GET {self.base_url}/models: no 'data' list")
        return [str(item["id"]) for item in data if isinstance(item, dict) and "id" in item]

    def url(self, endpoint: Endpoint | None = None) -> str:
        """The URL of ``endpoint`` (default: the options' endpoint)."""
        path = {"chat": "/chat/completions", "completions": "/completions", "responses": "/responses"}
        return self.base_url + path[endpoint or self.options.endpoint]

    def body(self, prompt: Prompt, *, stream: bool) -> dict[str, Any]:
        """The JSON body ``send()`` would post for ``prompt``."""
        opts = self.options
        return prompt.body(
            opts.endpoint,
            model=self.model,
            max_tokens=opts.max_tokens,
            temperature=opts.temperature,
            stream=stream,
            include_usage=opts.include_usage,
        )

    async def send(self, prompt: Prompt, *, stream: bool, epoch: float = 0.0) -> RequestRecord:
        """Run one request to completion or failure, within ``options.timeout`` seconds; never raises."""
        body = self.body(prompt, stream=stream)
        return await self.send_body(self.options.endpoint, body, name=prompt.name, epoch=epoch)

    async def send_body(
        self,
        endpoint: Endpoint,
        body: dict[str, Any],
        *,
        name: str = "",
        plan: ReadPlan | None = None,
        epoch: float = 0.0,
    ) -> RequestRecord:
        """Post ``body`` as it is (streamed if ``body["stream"]``), read as ``plan`` says; never raises."""
        stream = bool(body.get("stream"))
        plan = plan or ReadPlan()
        record = RequestRecord(stream=stream, prompt=name)
        url, content = self.url(endpoint), orjson.dumps(body)
        t0 = time.perf_counter()
        record.start = t0 - epoch
        try:
            async with asyncio.timeout(self.options.timeout):
                if not stream:
                    await self._complete(url, content, record, t0)
                elif plan.hangup_after_s is None:
                    await self._stream(url, content, record, t0, plan)
                else:
                    await self._stream_until(url, content, record, t0, plan)
            record.ok = not record.hung_up
        except TimeoutError:
            record.error = f"timeout: not complete after {self.options.timeout:g} s"
        except StreamError as exc:
            record.error = f"error event: {exc}"
        except (RequestFailedError, MalformedEventError) as exc:
            record.error = str(exc)
        except Exception as exc:  # a benchmark counts every failure and carries on
            record.error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if record.e2e is None or not record.ok:
            record.e2e = time.perf_counter() - t0
        return record

    async def _complete(self, url: str, body: bytes, record: RequestRecord, t0: float) -> None:
        response = await self._http.post(url, content=body)
        record.e2e = time.perf_counter() - t0  # the whole body is in
        _take_response(response, record)
        if response.status_code >= 400:
            raise RequestFailedError(_status_message(response))
        payload = orjson.loads(response.content)
        if not isinstance(payload, dict):
            raise RequestFailedError("response is not a JSON object")
        if payload.get("error") is not None:
            raise RequestFailedError(f"error body: {error_message(payload['error'])}")
        if payload.get("object") == "response":
            _take_response_object(payload, record)
            record.text = "".join(part.get("text", "") for item in payload.get("output") or []
                                  for part in item.get("content") or [] if isinstance(part, dict))
            return
        for choice in payload.get("choices") or []:
            if choice.get("index", 0) == 0:
                message = choice.get("message")
                text = message.get("content") if isinstance(message, dict) else choice.get("text")
                record.text = text or ""
                record.finish_reason = choice.get("finish_reason")
        _take_usage(payload, record)
        if record.usage_completion_tokens is not None:
            record.output_tokens = record.usage_completion_tokens
            record.token_source = "usage"

    async def _stream_until(self, url: str, body: bytes, record: RequestRecord, t0: float, plan: ReadPlan) -> None:
        """``_stream``, hung up ``plan.hangup_after_s`` seconds after ``t0`` if it has not ended by then."""
        assert plan.hangup_after_s is not None
        try:
            async with asyncio.timeout(plan.hangup_after_s):
                await self._stream(url, body, record, t0, plan)
        except TimeoutError:
            if not record.saw_done:  # a stream that was complete but for its last bytes was not hung up on
                record.hung_up = True
                record.hung_up_at = time.perf_counter() - t0

    async def _stream(self, url: str, body: bytes, record: RequestRecord, t0: float, plan: ReadPlan) -> None:
        headers = {"Accept": "text/event-stream"}
        pieces: list[str] = []
        reader: SSEReader | None = None
        try:
            async with self._http.stream("POST", url, content=body, headers=headers) as response:
                _take_response(response, record)
                if response.status_code >= 400:
                    await response.aread()
                    record.error_body = _json_or_none(response)
                    raise RequestFailedError(_status_message(response))
                reader = SSEReader(response.aiter_lines(), keep=plan.keep_events)
                try:
                    await self._read(reader, record, pieces, t0, plan)
                except _HungUp:
                    record.hung_up = True
                    record.hung_up_at = time.perf_counter() - t0
                    await reader.aclose()
                    return
                except (StreamError, MalformedEventError):
                    if plan.keep_events:  # what follows an error event is part of the wire too
                        await reader.drain()
                    raise
                record.saw_done = reader.saw_done
                end = reader.done_time if reader.done_time is not None else time.perf_counter()
                record.e2e = end - t0
                if plan.keep_events:
                    await reader.drain()
        finally:  # a failed stream keeps what it received, for the raw timings
            if reader is not None:
                record.events = reader.events
                record.comments = reader.comments
            _finish_stream(record, pieces)
        if record.finish_reason is None:  # an answer that never finished is not an answer
            how = "[DONE] came" if record.saw_done else "the body ended"
            raise RequestFailedError(
                f"stream ended early: {how} without a finish_reason, after {record.content_chunks} content chunks"
            )

    @staticmethod
    async def _read(reader: SSEReader, record: RequestRecord, pieces: list[str], t0: float, plan: ReadPlan) -> None:
        """Fold the stream's chunks into ``record``; raise ``_HungUp`` at the plan's hang-up point."""
        limit = plan.hangup_after_events
        if limit == 0:
            raise _HungUp
        seen = 0
        chunks = reader.chunks()
        try:
            async for chunk in chunks:
                piece = _take_chunk(chunk.payload, record)
                if piece:
                    record.chunk_times.append(chunk.time - t0)
                    pieces.append(piece)
                seen += 1
                if limit is not None and seen >= limit:
                    raise _HungUp
                if plan.pause_s > 0:
                    await asyncio.sleep(plan.pause_s)
        finally:
            await chunks.aclose()


def _take_response(response: httpx.Response, record: RequestRecord) -> None:
    record.status = response.status_code
    record.content_type = response.headers.get("content-type")
    record.request_id = response.headers.get("x-request-id")
    if response.status_code >= 400 and not record.stream:
        record.error_body = _json_or_none(response)


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return None


def _finish_stream(record: RequestRecord, pieces: list[str]) -> None:
    """Fill in text, chunk totals, TTFT and the token count from what the stream delivered."""
    record.text = "".join(pieces)
    record.content_chunks = len(record.chunk_times)
    if record.chunk_times:
        record.ttft = record.chunk_times[0]
        record.last_token = record.chunk_times[-1]
    if record.usage_completion_tokens is not None:
        record.output_tokens = record.usage_completion_tokens
        record.token_source = "usage"
    else:
        record.output_tokens = record.content_chunks
        record.token_source = "chunks"


_RESPONSE_FINISH = {"completed": "stop", "incomplete": "length"}


def _take_chunk(payload: dict[str, Any], record: RequestRecord) -> str:
    """Fold one stream chunk into ``record``; return the content it carried for choice 0.

    A Responses API event (it has a ``type``) carries text in ``response.output_text.delta`` and the
    finish and usage in its terminal event.
    """
    kind = payload.get("type")
    if isinstance(kind, str):
        if kind == "response.output_text.delta":
            return str(payload.get("delta") or "")
        if kind in ("response.failed", "error"):
            error = payload.get("response", {}).get("error") if kind == "response.failed" else payload
            raise StreamError(error_message(error))
        if isinstance(payload.get("response"), dict) and kind in ("response.completed", "response.incomplete"):
            _take_response_object(payload["response"], record)
        return ""
    _take_usage(payload, record)
    piece = ""
    for choice in payload.get("choices") or []:
        if not isinstance(choice, dict) or choice.get("index", 0) != 0:
            continue
        delta = choice.get("delta")
        text = delta.get("content") if isinstance(delta, dict) else choice.get("text")
        if isinstance(text, str):
            piece += text
        if choice.get("finish_reason"):
            record.finish_reason = str(choice["finish_reason"])
    return piece


def _take_usage(payload: dict[str, Any], record: RequestRecord) -> None:
    usage = payload.get("usage")
    if isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int):
        record.usage_completion_tokens = usage["completion_tokens"]
        if isinstance(usage.get("prompt_tokens"), int):
            record.prompt_tokens = usage["prompt_tokens"]
        details = usage.get("prompt_tokens_details")
        if isinstance(details, dict) and isinstance(details.get("cached_tokens"), int):
            record.cached_tokens = details["cached_tokens"]


def _take_response_object(response: dict[str, Any], record: RequestRecord) -> None:
    """A Responses API object's finish (``completed`` -> stop, ``incomplete`` -> length) and usage."""
    record.finish_reason = _RESPONSE_FINISH.get(str(response.get("status")), str(response.get("status")))
    usage = response.get("usage")
    if isinstance(usage, dict) and isinstance(usage.get("output_tokens"), int):
        record.usage_completion_tokens = usage["output_tokens"]
        if isinstance(usage.get("input_tokens"), int):
            record.prompt_tokens = usage["input_tokens"]


def _status_message(response: httpx.Response) -> str:
    """``HTTP 500: <the error envelope's message>`` for a failed response."""
    detail = response.text[:200]
    try:
        payload = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        payload = None
    if isinstance(payload, dict) and payload.get("error") is not None:
        detail = error_message(payload["error"])
    elif isinstance(payload, dict) and "detail" in payload:
        detail = str(payload["detail"])
    return f"HTTP {response.status_code}: {detail}".rstrip(": ")
