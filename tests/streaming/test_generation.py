"""ChoiceDecoder driven by scripted tokens: UTF-8 never split, stops cut, logprobs travel with their bytes."""

from __future__ import annotations

import itertools

import pytest

from streamserve.engine import FinishReason, TokenEvent
from streamserve.streaming.events import Finish, TextDelta
from streamserve.streaming.generation import ChoiceDecoder

TEXT = "Hi 你好, w😀rld é!"


class ScriptedTokenizer:
    """Token i is ``pieces[i]``: arbitrary byte slices, so tokens may end mid-character."""

    add_bos = False
    bos_text = ""
    eos_text = ""
    control_texts: frozenset[str] = frozenset()

    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = pieces

    def tokenize(self, text: str, *, add_special: bool, parse_special: bool) -> list[int]:
        raise NotImplementedError

    def token_bytes(self, token_id: int) -> bytes:
        return self.pieces[token_id]

    def is_eog(self, token_id: int) -> bool:
        return False


def split(data: bytes, cuts: tuple[int, ...]) -> list[bytes]:
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def run(pieces: list[bytes], stop: tuple[str, ...] = (), *, logprobs: bool = False,
        finish: FinishReason | None = FinishReason.LENGTH) -> tuple[list[TextDelta], Finish, ChoiceDecoder]:
    decoder = ChoiceDecoder(0, ScriptedTokenizer(pieces), stop)
    deltas: list[TextDelta] = []
    for i in range(len(pieces)):
        last = i == len(pieces) - 1
        event = TokenEvent(i, -0.5 if logprobs else None, () if logprobs else None, finish if last else None)
        for out in decoder.push(event):
            if isinstance(out, Finish):
                return deltas, out, decoder
            deltas.append(out)
    if finish is None:
        for out in decoder.push(TokenEvent(len(pieces), None, None, FinishReason.EOG)):
            if isinstance(out, Finish):
                return deltas, out, decoder
            deltas.append(out)
    raise AssertionError("no finish event")


DATA = TEXT.encode()
TWO_CUTS = list(itertools.combinations(range(1, len(DATA)), 2))


@pytest.mark.parametrize("cuts", [*TWO_CUTS[::7], tuple(range(1, len(DATA)))])
def test_text_is_whole_characters_and_complete(cuts: tuple[int, ...]) -> None:
    deltas, finish, decoder = run(split(DATA, cuts))
    assert "".join(d.text for d in deltas) == TEXT
    assert all("\ufffd" not in d.text and d.text for d in deltas)
    assert finish.reason == "length"
    assert decoder.completion_tokens == len(cuts) + 1


@pytest.mark.parametrize("cuts", [*TWO_CUTS[::5], tuple(range(1, len(DATA)))])
def test_logprob_entries_travel_with_their_last_byte(cuts: tuple[int, ...]) -> None:
    pieces = split(DATA, cuts)
    deltas, _, _ = run(pieces, logprobs=True)
    sent_text = b""
    released = 0
    for delta in deltas:
        sent_text += delta.text.encode()
        released += len(delta.logprobs or ())
        released_bytes = b"".join(pieces[:released])
        # Every released token's bytes have been sent; the first unreleased one still has a byte to come.
        assert sent_text.startswith(released_bytes)
        if released < len(pieces):
            assert len(sent_text) < len(released_bytes) + len(pieces[released])
    assert sent_text == DATA
    entries = [e for d in deltas for e in d.logprobs or ()]
    assert [bytes(e.bytes) for e in entries] == pieces
    offsets = [e.offset for e in entries]
    assert offsets == sorted(offsets)
    assert all(0 <= o <= len(TEXT) for o in offsets)


@pytest.mark.parametrize("start", range(len(TEXT)))
def test_stop_string_at_every_position_is_cut_and_never_sent(start: int) -> None:
    stop = TEXT[start:start + 3]
    pieces = [ch.encode() for ch in TEXT]
    deltas, finish, decoder = run(pieces, (stop,), logprobs=True)
    joined = "".join(d.text for d in deltas)
    assert joined == TEXT[: TEXT.index(stop)]
    assert finish.reason == "stop"
    assert decoder.completion_tokens == TEXT.index(stop) + len(stop)
    sent_entries = [e for d in deltas for e in d.logprobs or ()]
    assert b"".join(bytes(e.bytes) for e in sent_entries) == joined.encode()


def test_held_back_prefix_is_flushed_at_end_of_generation() -> None:
    pieces = [b"ab", b"c", b"X"]
    deltas, finish, _ = run(pieces, ("XY",), finish=None)
    assert [d.text for d in deltas] == ["ab", "c", "X"]
    assert finish.reason == "stop"


def test_held_back_prefix_is_flushed_at_length() -> None:
    deltas, finish, _ = run([b"ab", b"X"], ("XY",))
    assert "".join(d.text for d in deltas) == "abX"
    assert finish.reason == "length"


def test_character_cut_by_the_token_limit_is_dropped_with_its_logprobs() -> None:
    deltas, finish, decoder = run([b"a", "你".encode()[:2]], logprobs=True)
    assert "".join(d.text for d in deltas) == "a"
    assert [bytes(e.bytes) for d in deltas for e in d.logprobs or ()] == [b"a"]
    assert finish.reason == "length"
    assert decoder.completion_tokens == 2


def test_invalid_bytes_mid_stream_still_show_as_replacement() -> None:
    deltas, _, _ = run([b"a", b"\xff", b"b"])
    assert "".join(d.text for d in deltas) == "a\ufffdb"


def test_echo_offset_shifts_text_offsets() -> None:
    decoder = ChoiceDecoder(0, ScriptedTokenizer([b"ab", b"cd"]), (), offset=10)
    out = decoder.push(TokenEvent(0, -0.1, ()))
    out += decoder.push(TokenEvent(1, -0.2, (), FinishReason.LENGTH))
    offsets = [e.offset for d in out if isinstance(d, TextDelta) for e in d.logprobs or ()]
    assert offsets == [10, 12]
