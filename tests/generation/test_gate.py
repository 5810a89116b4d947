"""The hold-back stage driven by scripted tokens, with the real rules policy on the real checker thread.

A blocked word at every offset, split across tokens every way, never reaches the client, not even
its first character; released text never lags generated text by more than the window; unflagged
streams are the very same deltas as unmoderated ones.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator, Sequence

import pytest

from streamserve.engine import FinishReason, TokenEvent
from streamserve.generation.events import Annotation, Event, Finish, TextDelta
from streamserve.generation.gate import ModerationGate, ModerationPlan
from streamserve.generation.generation import ChoiceDecoder
from streamserve.moderation import Checker, ModerationResult, RulesPolicy, WindowedPolicy
from streamserve.moderation.rules import parse_rules
from tests.generation.test_generation import ScriptedTokenizer

RULES = '[harassment]\nwords = ["idiot"]\n[violence]\npatterns = ["<<[^>]*>>"]\n'
WINDOW = 24
FILLER = "The quick brown fox jumps over the lazy dog. "


@pytest.fixture(scope="module")
def checker() -> Iterator[Checker]:
    rules = Checker([RulesPolicy(parse_rules(RULES))])
    yield rules
    rules.close()


def pieces_of(text: str, cuts: Sequence[int]) -> list[bytes]:
    bounds = [0, *cuts, len(text)]
    return [text[a:b].encode() for a, b in itertools.pairwise(bounds) if b > a]


def run(pieces: list[bytes], plan: ModerationPlan | None) -> tuple[list[Event], list[tuple[int, int]]]:
    """Events out of decoder (+ gate), and (generated, released) character counts after every token."""

    async def drive() -> tuple[list[Event], list[tuple[int, int]]]:
        decoder = ChoiceDecoder(0, ScriptedTokenizer(pieces), ())
        gate = ModerationGate(0, plan) if plan else None
        events: list[Event] = []
        lags = []
        generated = released = 0
        tokens = [*(TokenEvent(i) for i in range(len(pieces))), TokenEvent(len(pieces), finish=FinishReason.EOG)]
        try:
            for token in tokens:
                for event in decoder.push(token):
                    if isinstance(event, TextDelta):
                        generated += len(event.text)
                    for out in await gate.push(event) if gate else [event]:
                        events.append(out)
                        if isinstance(out, TextDelta):
                            released += len(out.text)
                        if isinstance(out, Finish):
                            return events, lags
                lags.append((generated, released))
        finally:
            if gate:
                gate.close()
        raise AssertionError("no finish")

    return asyncio.run(drive())


def text_of(events: list[Event]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def finish_of(events: list[Event]) -> str:
    finishes = [e for e in events if isinstance(e, Finish)]
    assert len(finishes) == 1 and events[-1] is finishes[0]
    return finishes[0].reason


def blocking(checker: Checker) -> ModerationPlan:
    return ModerationPlan(checker, "blocking", WINDOW)


@pytest.mark.parametrize("offset", range(0, 2 * WINDOW + 1))
def test_blocked_word_at_every_offset_never_reaches_the_client(checker: Checker, offset: int) -> None:
    text = (FILLER * 3)[:offset] + " idiot, really"
    start = text.index("idiot")
    # token cuts: every 3 characters, shifted so the word is split at each of its inner positions
    for shift in range(3):
        cuts = [c for c in range(shift + 1, len(text), 3)]
        events, lags = run(pieces_of(text, cuts), blocking(checker))
        released = text_of(events)
        assert finish_of(events) == "content_filter"
        assert released == text[:len(released)] and len(released) <= start
        assert "i" not in released[start - 1:] or len(released) < start
        assert all(generated - sent <= WINDOW for generated, sent in lags)


@pytest.mark.parametrize("cuts", [c for c in itertools.combinations(range(1, 12), 2)][::3])
def test_word_split_across_tokens_every_way_is_caught(checker: Checker, cuts: tuple[int, ...]) -> None:
    text = "ok I.D.I.O.T"
    events, _ = run(pieces_of(text, cuts), blocking(checker))
    assert finish_of(events) == "content_filter"
    assert "ok ".startswith(text_of(events))


def test_only_a_possible_match_is_held_back(checker: Checker) -> None:
    text = "Hi there, idiom"
    pieces = pieces_of(text, range(1, len(text)))  # one character per token
    events, lags = run(pieces, blocking(checker))
    assert text_of(events) == text and finish_of(events) == "stop"
    held = [generated - released for generated, released in lags]
    # "i" of "idiom" starts a possible match: held until "m" rules it out; "Hi", "there" are never held
    assert held[:9] == [0, 0, 0, 0, 0, 0, 0, 0, 0]
    assert held[10:14] == [1, 2, 3, 4] and held[14] == 0


def test_unflagged_stream_is_the_same_deltas(checker: Checker) -> None:
    text = FILLER * 4 + "an idiom, < and > and <x> are not flagged; i d i o"
    for cuts in (range(2, len(text), 2), range(1, len(text), 5)):
        pieces = pieces_of(text, list(cuts))
        plain, _ = run(pieces, None)
        moderated, _ = run(pieces, blocking(checker))
        assert moderated == plain and finish_of(plain) == "stop"


def test_unflagged_stream_is_byte_for_byte_the_same(checker: Checker) -> None:
    text = FILLER * 5 + "Idioms are fine; so is an idiom."
    pieces = pieces_of(text, list(range(3, len(text), 4)))
    plain, _ = run(pieces, None)
    moderated, lags = run(pieces, blocking(checker))
    assert moderated == plain and finish_of(moderated) == "stop"
    assert all(generated - sent <= WINDOW for generated, sent in lags)


def test_a_match_longer_than_the_window_is_bounded_by_it(checker: Checker) -> None:
    text = "an <<" + "x" * 60 + " end"  # "<<" starts <<[^>]*>>, which never completes
    events, lags = run(pieces_of(text, list(range(1, len(text)))), blocking(checker))
    assert text_of(events) == text and finish_of(events) == "stop"
    assert max(generated - sent for generated, sent in lags) == WINDOW


def test_held_text_is_flushed_at_the_end(checker: Checker) -> None:
    events, _ = run(pieces_of("call me idio", [5, 9]), blocking(checker))
    assert text_of(events) == "call me idio" and finish_of(events) == "stop"


def test_async_mode_sends_at_once_and_ends_within_the_window(checker: Checker) -> None:
    text = FILLER + "you idiot" + " and then more text follows here" * 3
    events, _ = run(pieces_of(text, list(range(2, len(text), 2))), ModerationPlan(checker, "async", WINDOW))
    assert finish_of(events) == "content_filter"
    released = text_of(events)
    end = text.index("idiot") + len("idiot")
    assert text.startswith(released) and end <= len(released) <= end + WINDOW
    annotations = [e for e in events if isinstance(e, Annotation)]
    assert annotations and annotations[-1].result.flagged_categories == {"harassment"}
    checked = [a.checked for a in annotations]
    assert checked == sorted(checked)


class Shouty(WindowedPolicy):
    """A stand-in classifier: flags a window that holds "BAD" (case-sensitive) whole."""

    model = "shouty"

    def __init__(self, window: int) -> None:
        self.configure(window)
        self.seen: list[str] = []

    def score(self, texts: Sequence[str]) -> list[ModerationResult]:
        self.seen.extend(texts)
        return [ModerationResult(frozenset({"hate"}) if "BAD" in t else frozenset(), {"hate": 0.5}) for t in texts]


@pytest.mark.parametrize("offset", range(0, WINDOW + 4))
def test_classifier_windows_overlap_so_nothing_straddles_unchecked(offset: int) -> None:
    policy = Shouty(WINDOW)
    shouty = Checker([policy])
    try:
        text = ("a" * 7 + " ") * 6
        text = text[:offset] + "BAD" + text[offset:]
        events, lags = run(pieces_of(text, list(range(2, len(text), 2))), ModerationPlan(shouty, "blocking", WINDOW))
    finally:
        shouty.close()
    assert finish_of(events) == "content_filter"
    assert len(text_of(events)) <= offset
    assert all(len(window) <= WINDOW + 2 for window in policy.seen)
    assert all(generated - sent <= WINDOW for generated, sent in lags)
