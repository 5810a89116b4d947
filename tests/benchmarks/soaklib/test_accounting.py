"""soaklib/accounting.py: a lost or duplicated chunk is found; stop strings and cut characters are not losses."""

from __future__ import annotations

import copy

from soaklib.accounting import account, first_difference
from soaklib.wire import StreamSpec, check_stream

from .wirestreams import events, stream


def verdict(spec: StreamSpec, chunks: list[dict]) -> list[str]:  # type: ignore[type-arg]
    check = check_stream(spec, events(chunks))
    assert check.violations == [], check.violations
    return [v.rule for v in account(spec, check).violations]


def test_a_complete_stream_accounts_for_every_token() -> None:
    spec = StreamSpec("chat", n=2, max_tokens=3, include_usage=True, logprobs=1)
    assert verdict(spec, stream(choices=[["a", "b", "c"], ["d", "e", "f"]], usage=True, logprobs=1)) == []
    legacy = StreamSpec("completions", max_tokens=3, include_usage=True, logprobs=2)
    assert verdict(legacy, stream(chat=False, usage=True, logprobs=2)) == []


def test_a_duplicated_chunk_is_found() -> None:
    chunks = stream(usage=True, logprobs=1)
    twice = [*chunks[:2], chunks[1], *chunks[2:]]  # "Hel" sent twice: 4 chunks for 3 tokens
    spec = StreamSpec("chat", max_tokens=3, include_usage=True, logprobs=1)
    assert set(verdict(spec, twice)) == {"tokens.duplicated"}
    # Without logprobs, the chunk count against max_tokens and usage still shows it.
    plain = stream(usage=True)
    assert set(verdict(StreamSpec("chat", max_tokens=3, include_usage=True), [*plain[:2], plain[1], *plain[2:]])) \
        == {"tokens.duplicated"}


def test_a_lost_chunk_is_found() -> None:
    spec = StreamSpec("chat", max_tokens=3, include_usage=True, logprobs=1)
    chunks = stream(usage=True, logprobs=1)
    assert set(verdict(spec, [chunks[0], *chunks[2:]])) == {"tokens.lost"}
    # Without logprobs: usage says 3 tokens, yet the choice ran to max_tokens=4 by length.
    plain = StreamSpec("completions", max_tokens=4, include_usage=True)
    assert verdict(plain, stream(chat=False, usage=True)) == ["tokens.lost"]


def test_entries_that_do_not_make_the_text_are_a_loss() -> None:
    spec = StreamSpec("chat", max_tokens=8, logprobs=1)
    chunks = stream(finish="stop", logprobs=1)
    missing = copy.deepcopy(chunks)
    missing[3]["choices"][0]["logprobs"]["content"] = []  # "!" sent without its entry
    assert verdict(spec, missing) == ["tokens.lost"]
    wrong = copy.deepcopy(chunks)
    wrong[3]["choices"][0]["logprobs"]["content"][0]["bytes"] = list(b"?")  # caught chunk by chunk already
    assert [v.rule for v in check_stream(spec, events(wrong)).violations] == ["logprobs"]


def test_stop_strings_withhold_tokens_without_loss() -> None:
    spec = StreamSpec("chat", max_tokens=8, include_usage=True, logprobs=1, stop=("zz",))
    chunks = stream(finish="stop", usage=True, logprobs=1)
    chunks[-1]["usage"]["completion_tokens"] += 2  # the tokens of the stop string are counted, not listed
    chunks[-1]["usage"]["total_tokens"] += 2
    assert verdict(spec, chunks) == []


def test_an_unfinished_last_character_may_drop_its_tokens_only_where_plausible() -> None:
    chunks = stream(choices=[["中", "文"]], usage=True, logprobs=1)
    chunks[-1]["usage"]["completion_tokens"] += 1  # a third token held the first byte of a character
    chunks[-1]["usage"]["total_tokens"] += 1
    spec = StreamSpec("chat", max_tokens=3, include_usage=True, logprobs=1)
    check = check_stream(spec, events(chunks))
    result = account(spec, check)
    assert result.violations == [] and result.cut_choices == 1
    ascii_chunks = stream(choices=[["a", "b"]], usage=True, logprobs=1)
    ascii_chunks[-1]["usage"]["completion_tokens"] += 1
    ascii_chunks[-1]["usage"]["total_tokens"] += 1
    assert verdict(spec, ascii_chunks) == ["tokens.lost", "tokens.lost"]  # an ASCII answer cannot be cut


def test_first_difference() -> None:
    assert first_difference("abc", "abd") == 2
    assert first_difference("ab", "abc") == 2
    assert first_difference("", "x") == 0
