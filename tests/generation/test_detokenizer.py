"""IncrementalDetokenizer: any split of any byte string decodes like the whole string."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator, Sequence

from streamserve.generation.detokenizer import IncrementalDetokenizer

VALID_SAMPLES = [
    "plain ascii",
    "café déjà vu",  # 2-byte
    "你好，世界。",  # 3-byte
    "emoji 😀 and 👍🏽!",  # 4-byte, with a modifier
    "mixed: a é 中 😀 z",
    "€𝄞ß",
]

INVALID_SAMPLES = [
    b"\x80abc",  # stray continuation byte
    b"ab\xbf\xbf",  # stray continuations at the end
    b"\xff\xfe\xf5\xf8",  # bytes that are never valid
    b"\xe4\xb8A\xe4",  # a 3-byte sequence broken by ASCII, then cut at the end
    b"\xf0\x9f\x98",  # a 4-byte sequence missing its last byte
    b"\xc0\xaf\xc1\xbf",  # overlong 2-byte forms
    b"\xe0\x80\xaf",  # overlong 3-byte form
    b"\xed\xa0\x80\xed\xbf\xbf",  # UTF-16 surrogates
    b"\xf4\x90\x80\x80",  # past U+10FFFF
    b"\xf0\x80\x80\x80",  # overlong 4-byte form
    b"\xe4\xe4\xb8\xad",  # a lead byte broken by another lead byte
    b"\xc3",  # only a lead byte
    "中".encode() + b"\x80" + "😀".encode()[:2] + "é".encode(),
]


def splits(data: bytes, cuts: int) -> Iterator[list[bytes]]:
    """Every way to cut ``data`` at ``cuts`` positions (empty pieces included)."""
    for points in itertools.combinations_with_replacement(range(len(data) + 1), cuts):
        bounds = [0, *points, len(data)]
        yield [data[a:b] for a, b in itertools.pairwise(bounds)]


def run(pieces: Sequence[bytes]) -> str:
    """Push every piece, then flush; the joined text."""
    detok = IncrementalDetokenizer()
    out = "".join(detok.push(piece) for piece in pieces) + detok.flush()
    assert detok.pending == b""
    return out


def all_samples() -> list[bytes]:
    return [text.encode() for text in VALID_SAMPLES] + INVALID_SAMPLES


def test_every_two_and_three_piece_split_matches_whole_decode() -> None:
    for data in all_samples():
        expected = data.decode("utf-8", "replace")
        for cuts in (1, 2):
            for pieces in splits(data, cuts):
                assert run(pieces) == expected, (data, pieces)


def test_byte_by_byte_matches_whole_decode() -> None:
    for data in all_samples():
        assert run([bytes([b]) for b in data]) == data.decode("utf-8", "replace"), data


def test_random_bytes_random_splits_match_whole_decode() -> None:
    rng = random.Random(20240607)
    fragments = [*(text.encode() for text in "aé中😀"), *(bytes([b]) for b in range(0x80, 0x100))]
    for _ in range(3000):
        data = b"".join(rng.choice(fragments) for _ in range(rng.randint(0, 12)))
        if rng.random() < 0.5:
            data = bytes(rng.randrange(256) for _ in range(rng.randint(0, 12)))
        points = sorted(rng.randint(0, len(data)) for _ in range(rng.randint(0, 6)))
        pieces = [data[a:b] for a, b in itertools.pairwise([0, *points, len(data)])]
        assert run(pieces) == data.decode("utf-8", "replace"), (data, pieces)


def test_valid_text_is_emitted_as_soon_as_each_character_completes() -> None:
    for text in VALID_SAMPLES:
        data = text.encode()
        for pieces in splits(data, 2):
            detok = IncrementalDetokenizer()
            emitted = ""
            consumed = b""
            for piece in pieces:
                emitted += detok.push(piece)
                consumed += piece
                assert "\ufffd" not in emitted
                assert len(detok.pending) <= 3
                assert emitted.encode() + detok.pending == consumed
                assert detok.pending == b"" or consumed.endswith(detok.pending)
                try:
                    consumed.decode()
                except UnicodeDecodeError:
                    assert detok.pending, "an incomplete character must be held"
                else:
                    assert detok.pending == b"", "complete text must not be held"
            assert detok.flush() == ""
            assert emitted == text


def test_incomplete_character_is_held_then_completed() -> None:
    detok = IncrementalDetokenizer()
    emoji = "😀".encode()
    assert detok.push(b"hi " + emoji[:1]) == "hi "
    assert detok.pending == emoji[:1]
    assert detok.push(emoji[1:3]) == ""
    assert detok.pending == emoji[:3]
    assert detok.push(emoji[3:] + b"!") == "😀!"
    assert detok.pending == b""


def test_invalid_bytes_are_replaced_immediately_not_held() -> None:
    detok = IncrementalDetokenizer()
    assert detok.push(b"\xff") == "\ufffd"
    assert detok.push(b"a\x80") == "a\ufffd"
    assert detok.push(b"\xed\xa0") == "\ufffd\ufffd"
    assert detok.push(b"\xe0\x9f") == "\ufffd\ufffd"
    assert detok.push(b"\xf4\x90") == "\ufffd\ufffd"
    assert detok.pending == b""


def test_sequence_broken_by_next_token_becomes_one_replacement() -> None:
    detok = IncrementalDetokenizer()
    assert detok.push(b"\xe4\xb8") == ""
    assert detok.push(b"A") == "\ufffdA"
    assert detok.pending == b""


def test_flush_replaces_unfinished_character_and_resets() -> None:
    detok = IncrementalDetokenizer()
    assert detok.push(b"ok\xf0\x9f\x98") == "ok"
    assert detok.flush() == "\ufffd"
    assert detok.pending == b""
    assert detok.flush() == ""
    assert detok.push("中".encode()) == "中"


def test_empty_push_keeps_pending() -> None:
    detok = IncrementalDetokenizer()
    assert detok.push(b"\xc3") == ""
    assert detok.push(b"") == ""
    assert detok.pending == b"\xc3"
    assert detok.push(b"\xa9") == "é"
