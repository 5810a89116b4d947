"""Reading a server's answers into a ``RequestRecord``: whole bodies, stream chunks, usage and errors.

Chat and legacy completions (``choices``) and Responses API objects and events (``type``) are
understood; only choice 0's text is kept. These are pure functions of the payloads, so the client
(``client.py``) stays about sending, timing and reading the wire.
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from .record import RequestFailedError, RequestRecord
from .sse import StreamError, error_message


def take_response(response: httpx.Response, record: RequestRecord) -> None:
    """The response's status and headers (and a failed whole answer's JSON body) into ``record``."""
    record.status = response.status_code
    record.content_type = response.headers.get("content-type")
    record.request_id = response.headers.get("x-request-id")
    if response.status_code >= 400 and not record.stream:
        record.error_body = json_or_none(response)


def json_or_none(response: httpx.Response) -> Any:
    """The response's body parsed as JSON, or None if it is not JSON."""
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return None


def finish_stream(record: RequestRecord, pieces: list[str]) -> None:
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


def take_body(payload: Any, record: RequestRecord) -> None:
    """Fold a whole (non-streamed) 2xx answer into ``record``: choice 0's text, its finish, the usage.

    Raises ``RequestFailedError`` for a body that is not an object or that carries an error.
    """
    if not isinstance(payload, dict):
        raise RequestFailedError("response is not a JSON object")
    if payload.get("error") is not None:
        raise RequestFailedError(f"error body: {error_message(payload['error'])}")
    if payload.get("object") == "response":
        take_response_object(payload, record)
        record.text = "".join(part.get("text", "") for item in payload.get("output") or []
                              for part in item.get("content") or [] if isinstance(part, dict))
        return
    for choice in payload.get("choices") or []:
        if choice.get("index", 0) == 0:
            message = choice.get("message")
            text = message.get("content") if isinstance(message, dict) else choice.get("text")
            record.text = text or ""
            record.finish_reason = choice.get("finish_reason")
    take_usage(payload, record)
    if record.usage_completion_tokens is not None:
        record.output_tokens = record.usage_completion_tokens
        record.token_source = "usage"


def take_chunk(payload: dict[str, Any], record: RequestRecord) -> str:
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
            take_response_object(payload["response"], record)
        return ""
    take_usage(payload, record)
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


def take_usage(payload: dict[str, Any], record: RequestRecord) -> None:
    """A chat or completions ``usage`` object's token counts, cached prompt tokens included."""
    usage = payload.get("usage")
    if isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int):
        record.usage_completion_tokens = usage["completion_tokens"]
        if isinstance(usage.get("prompt_tokens"), int):
            record.prompt_tokens = usage["prompt_tokens"]
        details = usage.get("prompt_tokens_details")
        if isinstance(details, dict) and isinstance(details.get("cached_tokens"), int):
            record.cached_tokens = details["cached_tokens"]


def take_response_object(response: dict[str, Any], record: RequestRecord) -> None:
    """A Responses API object's finish (``completed`` -> stop, ``incomplete`` -> length) and usage."""
    record.finish_reason = _RESPONSE_FINISH.get(str(response.get("status")), str(response.get("status")))
    usage = response.get("usage")
    if isinstance(usage, dict) and isinstance(usage.get("output_tokens"), int):
        record.usage_completion_tokens = usage["output_tokens"]
        if isinstance(usage.get("input_tokens"), int):
            record.prompt_tokens = usage["input_tokens"]


def status_message(response: httpx.Response) -> str:
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
