"""StopMatcher: output is the text cut at the earliest stop, however the text is split."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator, Sequence

from streamserve.generation.stops import StopMatcher

CASES: list[tuple[str, list[str]]] = [
    ("Hello world", ["wor"]),
    ("Hello world", ["Hello world"]),  # stop equal to the whole text
    ("Hello world", ["He"]),  # stop at the very start
    ("Hello world", ["d"]),  # stop at the very end
    ("Hello world", ["xyz", "wox"]),  # a prefix appears but never completes
    ("aab", ["ab", "bc"]),
    ("abc", ["ab", "bc"]),  # overlapping stops: the earlier one wins
    ("xbcab", ["ab", "bc"]),
    ("aaab", ["aab"]),  # a false start overlapping the real one
    ("abababc", ["ababc"]),
    ("abcd", ["abcd", "c"]),  # a short stop inside a longer, earlier one
    ("abcx", ["abcd", "c"]),
    ("xyz", ["", "y"]),  # empty stops are ignored
    ("xyz", [""]),
    ("nothing here", []),
    ("你好。世界", ["。"]),
    ("你好世界", ["世界", "好世"]),
    ("emoji 😀👍 done", ["👍 d", "😀👍"]),
    ("User: hi\nAssistant:", ["\nUser:", "\nAssistant:"]),
]


def splits(text: str, cuts: int) -> Iterator[list[str]]:
    """Every way to cut ``text`` at ``cuts`` positions (empty pieces included)."""
    for points in itertools.combinations_with_replacement(range(len(text) + 1), cuts):
        bounds = [0, *points, len(text)]
        yield [text[a:b] for a, b in itertools.pairwise(bounds)]


def expected(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    """The text cut at the earliest occurrence of any non-empty stop, and whether one occurs."""
    starts = [text.find(stop) for stop in stops if stop and stop in text]
    return (text[: min(starts)], True) if starts else (text, False)


def expected_stop(text: str, stops: Sequence[str]) -> str | None:
    """The stop string that starts earliest in ``text`` (the shortest on a tie), if any occurs."""
    found = [(text.find(stop), len(stop), stop) for stop in stops if stop and stop in text]
    return min(found)[2] if found else None


def check(text: str, stops: Sequence[str], pieces: Sequence[str]) -> None:
    """Feed ``pieces``; every intermediate output must be a prefix of the expected result."""
    want, want_match = expected(text, stops)
    matcher = StopMatcher(stops)
    emitted = ""
    consumed = ""
    for piece in pieces:
        emitted += matcher.push(piece)
        consumed += piece
        assert want.startswith(emitted), (text, stops, pieces, emitted)
        if not matcher.matched:
            assert matcher.held == len(consumed) - len(emitted), (text, stops, pieces)
            assert consumed.startswith(emitted)
    emitted += matcher.flush()
    assert emitted == want, (text, stops, pieces)
    assert matcher.matched == want_match, (text, stops, pieces)
    assert matcher.stop == expected_stop(text, stops), (text, stops, pieces)
    assert matcher.held == 0


def test_every_split_point_of_scripted_cases() -> None:
    for text, stops in CASES:
        for cuts in (1, 2, 3):
            for pieces in splits(text, cuts):
                check(text, stops, pieces)
        check(text, stops, list(text))


def test_random_sweep_small_alphabet() -> None:
    rng = random.Random(1234)
    alphabet = "ab c"
    for _ in range(4000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 14)))
        stops = [
            "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 4))) for _ in range(rng.randint(0, 3))
        ]
        points = sorted(rng.randint(0, len(text)) for _ in range(rng.randint(0, 8)))
        pieces = [text[a:b] for a, b in itertools.pairwise([0, *points, len(text)])]
        check(text, stops, pieces)


def test_no_stops_returns_input_unchanged() -> None:
    matcher = StopMatcher([])
    piece = "".join(["some ", "text"])
    assert matcher.push(piece) is piece
    assert matcher.held == 0
    assert matcher.flush() == ""
    assert not matcher.matched


def test_possible_stop_start_is_held_then_released() -> None:
    matcher = StopMatcher(["</s>"])
    assert matcher.push("Hello <") == "Hello "
    assert matcher.held == 1
    assert matcher.push("/") == ""
    assert matcher.held == 2
    assert matcher.push("x> bye") == "</x> bye"
    assert matcher.held == 0
    assert not matcher.matched


def test_match_trims_and_later_pushes_are_dropped() -> None:
    matcher = StopMatcher(["STOP"])
    assert matcher.push("abc ST") == "abc "
    assert matcher.push("OP and more") == ""
    assert matcher.matched
    assert matcher.held == 0
    assert matcher.push("ignored") == ""
    assert matcher.flush() == ""


def test_held_text_is_flushed_at_end_without_match() -> None:
    matcher = StopMatcher(["\nUser:"])
    assert matcher.push("answer\nUs") == "answer"
    assert matcher.held == 3
    assert matcher.flush() == "\nUs"
    assert not matcher.matched
    assert matcher.held == 0


def test_stop_at_very_start_sends_nothing() -> None:
    matcher = StopMatcher(["Hi"])
    assert matcher.push("Hi there") == ""
    assert matcher.matched


def test_earlier_longer_stop_wins_over_later_shorter_one() -> None:
    matcher = StopMatcher(["abcd", "c"])
    assert matcher.push("xabc") == "x"
    assert not matcher.matched, "'abcd' may still complete and starts earlier than 'c'"
    assert matcher.held == 3
    assert matcher.push("d tail") == ""
    assert matcher.matched

    matcher = StopMatcher(["abcd", "c"])
    assert matcher.push("xabc") == "x"
    assert matcher.push("e") == "ab"
    assert matcher.matched


def test_flush_settles_a_pending_match() -> None:
    matcher = StopMatcher(["abcd", "c"])
    assert matcher.push("abc") == ""
    assert matcher.flush() == "ab"
    assert matcher.matched
