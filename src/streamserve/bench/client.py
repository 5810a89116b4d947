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
from types import TracebackType
from typing import Any

import httpx
import orjson

from .payloads import finish_stream, json_or_none, status_message, take_body, take_chunk, take_response
from .prompts import Endpoint, Prompt
from .record import ReadPlan, RequestFailedError, RequestOptions, RequestRecord
from .sse import MalformedEventError, SSEReader, StreamError


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
            raise RequestFailedError(f"GET {self.base_url}/models: {status_message(response)}")
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
        take_response(response, record)
        if response.status_code >= 400:
            raise RequestFailedError(status_message(response))
        take_body(orjson.loads(response.content), record)

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
                take_response(response, record)
                if response.status_code >= 400:
                    await response.aread()
                    record.error_body = json_or_none(response)
                    raise RequestFailedError(status_message(response))
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
            finish_stream(record, pieces)
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
                piece = take_chunk(chunk.payload, record)
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
