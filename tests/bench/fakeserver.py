"""A small, deliberately misbehaving OpenAI-style server for the bench tests.

What it does depends on a marker in the last user message (or the prompt):

- ``[error-500]``: a 500 with the OpenAI error envelope, before any byte of a stream;
- ``[drop]``: two content chunks, then the connection is cut (no terminating chunk, no ``[DONE]``);
- ``[error-event]``: two content chunks, then ``data: {"error": ...}`` and ``[DONE]``;
- ``[interrupted]``: two content chunks, then ``[DONE]`` with no finish chunk (as llama-cpp-python's
  server ends a stream that a newer request interrupted);
- ``[slow]``: waits 30 s before answering (for timeout tests);
- ``[no-usage]``: a well-formed stream that never sends a usage chunk, whatever was asked;
- anything else: a well-formed stream (role chunk, a ``:`` keep-alive comment, content, a finish chunk,
  a usage chunk when ``stream_options.include_usage`` is set, ``[DONE]``).

The answer is ``ANSWER_WORDS`` cut to ``max_tokens`` tokens, one word a token. The first content
chunk carries two tokens, so a counted-chunks total is one less than the usage total: tests can tell
which one the bench reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

MODEL = "fake-model"
ANSWER_WORDS = [f"w{i} " for i in range(1, 41)]
TOKEN_DELAY_S = 0.004


class DroppedConnectionError(Exception):
    """Raised inside a stream body: uvicorn then closes the connection mid-response."""


def _event(payload: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def _marker(body: dict[str, Any]) -> str:
    messages = body.get("messages")
    text = str(messages[-1].get("content", "") if messages else body.get("prompt", ""))
    for marker in ("[error-500]", "[drop]", "[error-event]", "[interrupted]", "[slow]", "[no-usage]"):
        if marker in text:
            return marker
    return ""


def _tokens(body: dict[str, Any]) -> list[str]:
    limit = int(body.get("max_tokens") or 16)
    return ANSWER_WORDS[: max(1, min(limit, len(ANSWER_WORDS)))]


def _chunk(chat: bool, text: str | None, finish: str | None = None, role: bool = False) -> dict[str, Any]:
    if chat:
        delta: dict[str, Any] = {}
        if role:
            delta = {"role": "assistant", "content": ""}
        elif text is not None:
            delta = {"content": text}
        choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        obj = "chat.completion.chunk"
    else:
        choice = {"index": 0, "text": text or "", "finish_reason": finish, "logprobs": None}
        obj = "text_completion"
    return {"id": "fake-1", "object": obj, "created": 1, "model": MODEL, "choices": [choice]}


async def _stream(body: dict[str, Any], chat: bool, marker: str) -> AsyncIterator[bytes]:
    tokens = _tokens(body)
    usage_wanted = bool((body.get("stream_options") or {}).get("include_usage")) and marker != "[no-usage]"
    if chat:
        yield _event(_chunk(chat, None, role=True))
    yield b": keep-alive\n\n"
    pieces = ["".join(tokens[:2]), *tokens[2:]]
    for index, piece in enumerate(pieces):
        await asyncio.sleep(TOKEN_DELAY_S)
        if index == 2 and marker == "[drop]":
            raise DroppedConnectionError("cut the connection mid-stream")
        if index == 2 and marker == "[interrupted]":
            yield b"data: [DONE]\n\n"
            return
        if index == 2 and marker == "[error-event]":
            yield _event({"error": {"message": "engine failed", "type": "server_error", "code": None}})
            yield b"data: [DONE]\n\n"
            return
        yield _event(_chunk(chat, piece))
    yield _event(_chunk(chat, None, finish="length"))
    if usage_wanted:
        usage_chunk = _chunk(chat, None)
        usage_chunk["choices"] = []
        usage_chunk["usage"] = {
            "prompt_tokens": 7,
            "completion_tokens": len(tokens),
            "total_tokens": 7 + len(tokens),
            "prompt_tokens_details": {"cached_tokens": 3},
        }
        yield _event(usage_chunk)
    yield b"data: [DONE]\n\n"


def create_app() -> FastAPI:
    """The fake server's FastAPI app."""
    app = FastAPI()

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": MODEL, "object": "model", "created": 1, "owned_by": "t"}]}

    async def answer(request: Request, chat: bool) -> Response:
        body = orjson.loads(await request.body())
        marker = _marker(body)
        if marker == "[error-500]":
            error = {"message": "the fake server failed", "type": "server_error", "param": None, "code": None}
            return JSONResponse({"error": error}, status_code=500)
        if marker == "[slow]":
            await asyncio.sleep(30)
        if body.get("stream"):
            return StreamingResponse(_stream(body, chat, marker), media_type="text/event-stream")
        tokens = _tokens(body)
        text = "".join(tokens)
        choice: dict[str, Any] = {"index": 0, "finish_reason": "length", "logprobs": None}
        if chat:
            choice["message"] = {"role": "assistant", "content": text}
        else:
            choice["text"] = text
        usage = {"prompt_tokens": 7, "completion_tokens": len(tokens), "total_tokens": 7 + len(tokens)}
        obj = "chat.completion" if chat else "text_completion"
        await asyncio.sleep(TOKEN_DELAY_S * len(tokens))
        return JSONResponse(
            {"id": "fake-1", "object": obj, "created": 1, "model": MODEL, "choices": [choice], "usage": usage}
        )

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        return await answer(request, chat=True)

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        return await answer(request, chat=False)

    return app


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def running_fake_server() -> Iterator[str]:
    """Serve the fake app with uvicorn in a thread on 127.0.0.1; yield its base URL (ending in /v1)."""
    port = free_port()
    config = uvicorn.Config(
        create_app(),
        host="127.0.0.1",
        port=port,
        log_level="critical",
        lifespan="off",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("fake server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
