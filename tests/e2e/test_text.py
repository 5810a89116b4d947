"""Text integrity on the real model: UTF-8 across token boundaries, and stop-string hold-back.

Greedy requests, run one at a time, so that the same request gives the same text (build-notes,
"Tests that tell the truth"): the stop tests first ask without a stop, then pick a stop string
from the middle of what the model really wrote.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.e2e.ssewire import MODEL, chat_text, choice_chunks, finish_reasons, read_stream

pytestmark = pytest.mark.e2e

REPLACEMENT = "\ufffd"
POEM = "Write a short poem about the sea and the sky."


def chat_body(content: str, **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": content}], "temperature": 0, **extra}


def non_streamed(http: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    response = http.post("/chat/completions", json=body)
    assert response.status_code == 200, response.text
    choice: dict[str, Any] = response.json()["choices"][0]
    return choice


# --- UTF-8 ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("content", [
    "用中文介绍一下北京。",
    "Reply with emoji only, no words: 🎉🔥😀🌊🐉",
], ids=["chinese", "emoji"])
def test_multibyte_text_streams_as_whole_characters(http: httpx.Client, content: str) -> None:
    """No U+FFFD, and no piece that is not whole characters.

    When ``max_tokens`` ends the output inside a character (emoji are often 2-3 byte-level tokens),
    the server drops that half character: the logprobs bytes then end with an incomplete UTF-8
    sequence that the text does not carry.
    """
    body = chat_body(content, max_tokens=40, logprobs=True)
    stream = read_stream(http, "/chat/completions", body)  # strict UTF-8 decode of every event
    assert stream.status_code == 200
    role, *elements, finish = choice_chunks(stream, 0)
    assert role["delta"]["content"] == ""
    assert finish["delta"] == {}
    assert elements
    pieces = [e["delta"].get("content") for e in elements]
    for piece in pieces:
        assert isinstance(piece, str) and piece, f"an empty or missing content piece: {pieces}"
        piece.encode("utf-8")  # no lone surrogates smuggled in as JSON escapes
    text = "".join(pieces)
    assert any(ord(ch) > 0x7F for ch in text), f"no multi-byte character to test: {text!r}"
    generated = b"".join(bytes(entry["bytes"]) for e in elements for entry in e["logprobs"]["content"])
    assert REPLACEMENT not in text, f"U+FFFD in the streamed text: {pieces}"
    assert generated.decode("utf-8") == text
    whole = non_streamed(http, body)
    assert text == whole["message"]["content"]
    assert finish_reasons(stream) == {0: whole["finish_reason"]}


# --- stop strings ---------------------------------------------------------------------------------------


def _proper_prefixes(stop: str) -> list[str]:
    return [stop[:k] for k in range(1, len(stop))]


def _pick_stop(text: str, mid_word: bool) -> tuple[str, str]:
    """A 2-3 word span the model really wrote, from the middle outwards, and the text cut before it.

    With ``mid_word`` the span starts two characters into a word, so the stop begins inside a token.
    The cut text must not itself end with a prefix of the stop, so a leak of held-back text shows.
    """
    words = text.split(" ")
    middle = len(words) // 2
    order = sorted(range(1, len(words) - 2), key=lambda i: abs(i - middle))
    for i in order:
        span = words[i:i + 2 + (i % 2)]
        if not all(w.isalpha() and len(w) >= 3 for w in span):
            continue
        stop = " ".join(span)[2:] if mid_word else " ".join(span)
        cut = text[:text.find(stop)]
        if cut and not any(cut.endswith(p) for p in _proper_prefixes(stop)):
            return stop, cut
    raise AssertionError(f"no usable stop span in the model's output: {text!r}")


@pytest.fixture(scope="module")
def poem(http: httpx.Client) -> dict[str, Any]:
    """The greedy poem without any stop string: the reference the stop tests cut."""
    choice = non_streamed(http, chat_body(POEM, max_tokens=48))
    assert choice["finish_reason"] == "length"
    assert len(choice["message"]["content"].split()) >= 8
    return choice


@pytest.mark.parametrize("mid_word", [False, True], ids=["word-span", "mid-word-span"])
def test_stop_string_is_cut_and_held_back(http: httpx.Client, poem: dict[str, Any], mid_word: bool) -> None:
    reference = poem["message"]["content"]
    stop, expected = _pick_stop(reference, mid_word)
    body = chat_body(POEM, max_tokens=48, stop=[stop], stream_options={"include_usage": True})
    stream = read_stream(http, "/chat/completions", body)
    text = chat_text(stream)
    assert text == expected, f"stop={stop!r}"
    assert stop not in text
    assert not any(text.endswith(p) for p in _proper_prefixes(stop)), f"a partial stop leaked: {text!r}"
    assert finish_reasons(stream) == {0: "stop"}
    # No streamed piece ever showed part of the stop string it later had to take back.
    sent = ""
    for element in choice_chunks(stream, 0):
        sent += element["delta"].get("content") or ""
        assert expected.startswith(sent), f"text sent that is not in the final output: {sent!r}"
    assert stream.chunks[-1]["usage"]["completion_tokens"] < 48
    # Non-streamed with the same stop: the same text.
    whole = non_streamed(http, {k: v for k, v in body.items() if k != "stream_options"})
    assert whole["message"]["content"] == expected
    assert whole["finish_reason"] == "stop"


def test_stop_string_that_never_occurs_changes_nothing(http: httpx.Client, poem: dict[str, Any]) -> None:
    reference = poem["message"]["content"]
    stream = read_stream(http, "/chat/completions", chat_body(POEM, max_tokens=48, stop=["ZQXJ never"]))
    assert chat_text(stream) == reference
    assert finish_reasons(stream) == {0: "length"}


def test_text_held_back_at_the_end_is_flushed(http: httpx.Client, poem: dict[str, Any]) -> None:
    """The output ends with what could start a stop string: held back, then flushed on ``length``."""
    reference = poem["message"]["content"]
    tail = reference[-3:]
    assert tail
    stop = tail + "ZQXJ"
    assert stop not in reference
    stream = read_stream(http, "/chat/completions", chat_body(POEM, max_tokens=48, stop=[stop]))
    assert chat_text(stream) == reference
    assert finish_reasons(stream) == {0: "length"}


# --- control tokens in user text ------------------------------------------------------------------------


@pytest.mark.parametrize("marker", ["<|im_end|>", "<|im_start|>"])
def test_user_text_cannot_inject_control_tokens(http: httpx.Client, marker: str) -> None:
    """A control token's text in user content stays plain text (several tokens), never the special token.

    If it were parsed as the one special token, the whole marker would count fewer prompt tokens
    than the same marker without its last character.
    """
    def prompt_tokens(content: str) -> int:
        response = http.post("/chat/completions", json=chat_body(content, max_tokens=1))
        assert response.status_code == 200, response.text
        tokens: int = response.json()["usage"]["prompt_tokens"]
        return tokens

    assert prompt_tokens(f"a {marker} b") >= prompt_tokens(f"a {marker[:-1]} b")
