"""ChoiceDecoder driven by scripted tokens: UTF-8 never split, stops cut, logprobs travel with their bytes."""

from __future__ import annotations

import itertools

import pytest

from streamserve.engine import FinishReason, TokenEvent
from streamserve.generation.events import Event, Finish, TextDelta, ToolCallDelta, ToolCallEnd, ToolCallStart
from streamserve.generation.generation import ChoiceDecoder
from streamserve.generation.tool_calls import ToolCallParser

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


# With a tool-call parser

CALL = '<tool_call>\n{"name": "f", "arguments": {"q": "Rome \\"x\\""}}\n</tool_call>'


def run_calls(text: str, *, size: int = 3, stop: tuple[str, ...] = (), finish: FinishReason = FinishReason.EOG,
              prefix: str = "", logprobs: bool = False) -> list[Event]:
    data = text.encode()
    pieces = [data[i:i + size] for i in range(0, len(data), size)]
    decoder = ChoiceDecoder(0, ScriptedTokenizer([*pieces, b""]), stop, calls=ToolCallParser(0))
    events = decoder.opening(prefix)
    for i in range(len(pieces)):
        last = finish is FinishReason.LENGTH and i == len(pieces) - 1
        events += decoder.push(TokenEvent(i, -0.5 if logprobs else None, () if logprobs else None,
                                          FinishReason.LENGTH if last else None))
        if isinstance(events[-1] if events else None, Finish):
            return events  # a stop string ended the choice (generation stops reading here)
    if finish is FinishReason.EOG:
        events += decoder.push(TokenEvent(len(pieces), None, None, FinishReason.EOG))
    assert isinstance(events[-1], Finish) and not any(isinstance(e, Finish) for e in events[:-1])
    return events


def arguments(events: list[Event]) -> list[str]:
    calls: list[str] = []
    for event in events:
        if isinstance(event, ToolCallStart):
            calls.append("")
        elif isinstance(event, ToolCallDelta):
            calls[-1] += event.arguments
    return calls


@pytest.mark.parametrize("size", [1, 2, 5, 64])
def test_content_then_calls_finish_with_tool_calls(size: int) -> None:
    events = run_calls("Let me look.\n" + CALL + "\n" + CALL, size=size)
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Let me look."
    assert arguments(events) == ['{"q": "Rome \\"x\\""}'] * 2
    first_call = next(i for i, e in enumerate(events) if isinstance(e, ToolCallStart))
    assert all(not isinstance(e, TextDelta) for e in events[first_call:])
    assert [e.arguments for e in events if isinstance(e, ToolCallEnd)] == arguments(events)
    assert events[-1] == Finish(0, "tool_calls")


def test_stop_strings_apply_to_content_not_to_arguments() -> None:
    events = run_calls(CALL, stop=("Rome",))
    assert arguments(events) == ['{"q": "Rome \\"x\\""}'] and events[-1] == Finish(0, "tool_calls")
    events = run_calls("Rome is " + CALL, stop=(" is",))
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Rome"
    assert not any(isinstance(e, ToolCallStart) for e in events)
    assert events[-1] == Finish(0, "stop", " is")  # the finish names the stop string that matched


def test_a_call_cut_by_the_limit_finishes_with_length() -> None:
    events = run_calls(CALL[:40], finish=FinishReason.LENGTH)
    assert [type(e) for e in events[:1]] == [ToolCallStart] and events[-1] == Finish(0, "length")


def test_plain_text_through_the_parser_is_unchanged() -> None:
    events = run_calls("No tools needed <tool here>.\n\n")
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "No tools needed <tool here>.\n\n"
    assert events[-1] == Finish(0, "stop")


def test_a_named_calls_prefix_opens_the_call_before_any_token() -> None:
    events = run_calls('{"q": "Rome \\"x\\""}', prefix='<tool_call>\n{"name": "f", "arguments": ')
    assert isinstance(events[0], ToolCallStart) and events[0].name == "f"
    assert arguments(events) == ['{"q": "Rome \\"x\\""}'] and events[-1] == Finish(0, "tool_calls")


def test_logprobs_list_content_tokens_only() -> None:
    events = run_calls("Ok " + CALL, size=1, logprobs=True)
    entries = [e for d in events if isinstance(d, TextDelta) for e in d.logprobs or ()]
    assert b"".join(bytes(e.bytes) for e in entries) == b"Ok"
