"""sse: exact framing of events, [DONE], errors and keep-alives."""

from __future__ import annotations

import json
from types import MappingProxyType

from pydantic import BaseModel

from streamserve.formats import sse
from streamserve.formats.completions import error_body


class Delta(BaseModel):
    role: str | None = None
    content: str | None = None


class Choice(BaseModel):
    index: int
    delta: Delta
    finish_reason: str | None = None


def test_model_keeps_explicit_nulls_and_is_compact() -> None:
    frame = sse.encode(Choice(index=0, delta=Delta(content="hi")))
    assert frame == b'data: {"index":0,"delta":{"role":null,"content":"hi"},"finish_reason":null}\n\n'


def test_mapping_is_compact_json_with_raw_utf8() -> None:
    frame = sse.encode({"a": None, "text": "你好 😀", "n": [1, 2]})
    assert frame == 'data: {"a":null,"text":"你好 😀","n":[1,2]}\n\n'.encode()


def test_non_dict_mapping_is_accepted() -> None:
    assert sse.encode(MappingProxyType({"k": 1})) == b'data: {"k":1}\n\n'


def test_newlines_in_text_never_break_the_frame() -> None:
    frame = sse.encode(Choice(index=1, delta=Delta(content="a\n\nb\r\n")))
    assert frame.startswith(b"data: ")
    assert frame.endswith(b"\n\n")
    body = frame[len(b"data: ") : -2]
    assert b"\n" not in body and b"\r" not in body
    assert json.loads(body)["delta"]["content"] == "a\n\nb\r\n"


def test_an_error_event_has_all_four_keys_and_no_choices() -> None:
    frame = sse.encode(error_body("boom"))
    assert frame == b'data: {"error":{"message":"boom","type":"server_error","param":null,"code":null}}\n\n'
    frame = sse.encode(error_body("too long", type="invalid_request_error", code="context_length_exceeded",
                                  param="messages"))
    assert json.loads(frame[len(b"data: ") :]) == {
        "error": {
            "message": "too long",
            "type": "invalid_request_error",
            "param": "messages",
            "code": "context_length_exceeded",
        }
    }
    assert "choices" not in json.loads(frame[len(b"data: ") :])


def test_constants() -> None:
    assert sse.DONE == b"data: [DONE]\n\n"
    assert sse.KEEPALIVE == b": keep-alive\n\n"
    assert sse.KEEPALIVE.startswith(b":")
    assert sse.MEDIA_TYPE == "text/event-stream"
    assert dict(sse.HEADERS) == {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
