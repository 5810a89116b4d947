"""LanePool: longest-prefix lane choice, LRU ties, the kept prefix, and what release remembers."""

from __future__ import annotations

import numpy as np
import pytest

from streamserve.engine.lanes import COPY_MIN_TOKENS, ROW_GROUP, LanePool, common_prefix_len, tail_rows


def _pool_with(contents: list[list[int]], release_order: list[int]) -> LanePool:
    """A pool whose lanes hold ``contents``, released (made free) in ``release_order``."""
    pool = LanePool(len(contents))
    for _ in contents:
        pool.acquire([999_999])  # take every lane; nothing matches this prompt
    for lane in release_order:
        pool.release(lane, list(contents[lane]))
    return pool


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [([], [], 0), ([1], [], 0), ([1, 2, 3], [1, 2, 3], 3), ([1, 2, 3], [1, 2, 4], 2), ([5], [6], 0),
     ([1, 2], [1, 2, 3, 4], 2)],
)
def test_common_prefix_len(a: list[int], b: list[int], expected: int) -> None:
    assert common_prefix_len(a, b) == expected
    assert common_prefix_len(b, a) == expected


def test_common_prefix_len_finds_every_first_difference_in_a_long_prompt() -> None:
    prompt = list(range(3000))
    for at in (0, 1, 63, 64, 1499, 2998, 2999):
        other = [*prompt[:at], -1, *prompt[at + 1 :]]
        assert common_prefix_len(prompt, other) == at
        assert common_prefix_len(other[: at + 1], prompt) == at


def test_best_reuse_is_the_longest_whole_grid_prefix_of_any_lane_busy_or_free() -> None:
    pool = LanePool(3, grid=4)
    prompt = list(range(20))
    busy, _, _ = pool.acquire([999])
    free, _, _ = pool.acquire([999])
    pool.hold(busy, prompt[:13], 13)  # a prompt being read: 13 tokens in, 12 on the grid
    pool.release(free, prompt[:6])
    assert pool.best_reuse(prompt) == 12
    assert pool.best_reuse(prompt[:5]) == 4  # one token is always left to decode
    assert pool.best_reuse([7, 8, 9, 10, 11]) == 0


def test_hold_prefill_makes_the_grid_chunks_read_so_far_copyable() -> None:
    pool = LanePool(2, grid=4)
    prompt = list(range(20))
    lane, _, _ = pool.acquire(prompt)
    pool.hold_prefill(lane, prompt, 10)
    assert (pool.contents[lane], pool.extents[lane]) == (prompt[:10], 8)
    assert pool.best_reuse(prompt) == 8


def test_fresh_pool_hands_out_each_lane_once() -> None:
    pool = LanePool(3)
    assert pool.num_free == 3
    lanes = [pool.acquire([1, 2, 3])[0] for _ in range(3)]
    assert sorted(lanes) == [0, 1, 2]
    assert pool.num_free == 0


def test_fresh_lane_keeps_nothing() -> None:
    pool = LanePool(2)
    lane, keep, _ = pool.acquire([1, 2, 3])
    assert keep == 0
    assert pool.contents[lane] == []


def test_longest_prefix_wins_over_release_order() -> None:
    pool = _pool_with([[1, 2, 3], [1, 2, 3, 4, 5], [9, 9]], release_order=[1, 0, 2])
    lane, keep, _ = pool.acquire([1, 2, 3, 4, 5, 6, 7])
    assert (lane, keep) == (1, 5)
    assert pool.contents[1] == [1, 2, 3, 4, 5]


def test_longest_prefix_counts_only_the_common_part() -> None:
    # Lane 0 holds more tokens, but lane 1 shares more of *this* prompt.
    pool = _pool_with([[1, 2, 7, 7, 7, 7, 7], [1, 2, 3]], release_order=[0, 1])
    lane, keep, _ = pool.acquire([1, 2, 3, 4])
    assert (lane, keep) == (1, 3)


def test_ties_go_to_least_recently_released_lane() -> None:
    pool = _pool_with([[7], [8], [9]], release_order=[2, 0, 1])
    # No lane shares a prefix with [1]: all tie at 0, so the oldest release goes first.
    assert [pool.acquire([1])[0] for _ in range(3)] == [2, 0, 1]


def test_equal_positive_prefix_ties_take_the_oldest_lane() -> None:
    pool = _pool_with([[1, 2, 5], [1, 2, 6], [3]], release_order=[1, 0, 2])
    lane, keep, _ = pool.acquire([1, 2, 7])
    assert (lane, keep) == (1, 2)
    # The most recently released of the two tied lanes is still cached.
    assert pool.contents[0] == [1, 2, 5]


def test_reacquired_lane_goes_to_the_back_of_the_lru_order() -> None:
    pool = LanePool(3)
    lane, _, _ = pool.acquire([1])
    pool.release(lane, [1, 2])
    others = [pool.acquire([5])[0] for _ in range(2)]
    assert lane not in others  # the two never-used lanes were older than the released one


def test_keep_leaves_at_least_one_prompt_token_on_full_hit() -> None:
    pool = _pool_with([[1, 2, 3, 4]], release_order=[0])
    lane, keep, _ = pool.acquire([1, 2, 3, 4])
    assert (lane, keep) == (0, 3)
    assert pool.contents[0] == [1, 2, 3]


def test_keep_leaves_one_token_when_prompt_is_a_prefix_of_the_cache() -> None:
    pool = _pool_with([[1, 2, 3, 4, 5, 6]], release_order=[0])
    lane, keep, _ = pool.acquire([1, 2])
    assert (lane, keep) == (0, 1)
    assert pool.contents[0] == [1]


def test_single_token_prompt_keeps_nothing() -> None:
    pool = _pool_with([[4, 5]], release_order=[0])
    assert pool.acquire([4]) == (0, 0, None)
    assert pool.contents[0] == []


@pytest.mark.parametrize("prompt_len", range(1, 9))
def test_keep_never_reaches_prompt_length(prompt_len: int) -> None:
    cached = list(range(6))
    pool = _pool_with([cached], release_order=[0])
    prompt = list(range(prompt_len))
    _, keep, _ = pool.acquire(prompt)
    assert keep == min(len(cached), prompt_len - 1)
    assert keep <= len(prompt) - 1


def test_acquire_truncates_contents_to_the_kept_prefix() -> None:
    pool = _pool_with([[1, 2, 3, 4, 5]], release_order=[0])
    _, keep, _ = pool.acquire([1, 2, 9, 9])
    assert keep == 2
    assert pool.contents[0] == [1, 2]


def test_release_remembers_contents_and_frees_the_lane() -> None:
    pool = LanePool(2)
    lane, _, _ = pool.acquire([1, 2, 3])
    assert pool.num_free == 1
    pool.release(lane, [1, 2, 3, 10, 11])
    assert pool.num_free == 2
    assert pool.contents[lane] == [1, 2, 3, 10, 11]
    # The next prompt extending those tokens reuses them.
    assert pool.acquire([1, 2, 3, 10, 11, 12]) == (lane, 5, None)


def test_release_with_nothing_forgets_the_lane() -> None:
    pool = _pool_with([[1, 2, 3]], release_order=[0])
    lane, _, _ = pool.acquire([1, 2, 3, 4])
    pool.release(lane, [])
    assert pool.contents[lane] == []
    assert pool.acquire([1, 2, 3, 4]) == (lane, 0, None)


def test_cached_tokens_counts_free_lanes_only() -> None:
    pool = _pool_with([[1, 2, 3], [4, 5], []], release_order=[0, 1, 2])
    assert pool.cached_tokens() == 5
    pool.acquire([1, 2, 9])  # lane 0 is busy now: its sequence accounts for what it holds
    assert pool.cached_tokens() == 2


SYSTEM = list(range(1000, 1047))  # the case: a 47-token system prompt, 81-token histories


def _turn(conversation: int, turn: int, length: int = 17) -> list[int]:
    """Tokens unique to one conversation's turn."""
    return [100_000 * (conversation + 1) + 1000 * turn + i for i in range(length)]


def test_new_conversation_does_not_evict_a_cached_one_while_empty_lanes_are_free() -> None:
    """Chat prompts share the system-prompt prefix. A new conversation must not take the lane that
    holds another conversation's history (keeping the 47 shared tokens, discarding 34) while empty
    lanes are free, or interleaved conversations all land on one lane and lose their cache.
    """
    conversation_a = [*SYSTEM, *_turn(0, 0), *_turn(0, 1)]
    pool = LanePool(8)
    lane_a, _, _ = pool.acquire(conversation_a)
    pool.release(lane_a, conversation_a)
    lane_b, keep, source = pool.acquire([*SYSTEM, *_turn(1, 0)])
    assert lane_b != lane_a
    assert (keep, source) == (len(SYSTEM), lane_a)  # the system prompt is copied, not read again
    assert pool.contents[lane_a] == conversation_a


@pytest.mark.parametrize("n_conversations", [2, 8])
def test_alternating_conversations_up_to_the_lane_count_keep_their_whole_history(n_conversations: int) -> None:
    """N <= lanes conversations sharing a system prompt, turns alternating: every turn after the first
    reuses that conversation's whole previous turn (prompt and answer), as the issue asks."""
    pool = LanePool(8)
    histories = [list(SYSTEM) for _ in range(n_conversations)]
    for turn in range(3):
        for c in range(n_conversations):
            prompt = histories[c] + _turn(c, 2 * turn)
            lease = pool.acquire(prompt)
            expected = len(histories[c]) if turn else (len(SYSTEM) if c else 0)
            assert lease.keep == expected, (turn, c)
            answer = _turn(c, 2 * turn + 1)
            pool.release(lease.lane, prompt + answer)
            histories[c] = prompt + answer


def test_own_lane_is_retaken_when_only_a_few_tail_tokens_differ() -> None:
    """A stop string or re-tokenized answer leaves a few tokens the next prompt does not repeat: the
    conversation goes back to its own lane (losing those few) rather than copying it elsewhere."""
    history = [*SYSTEM, *_turn(0, 0)]
    pool = LanePool(4)
    lane, _, _ = pool.acquire(history)
    pool.release(lane, [*history, 7, 7, 7])  # three tokens generated after the stop string
    lease = pool.acquire([*history, *_turn(0, 1)])
    assert (lease.lane, lease.keep, lease.source) == (lane, len(history), None)


def test_with_no_free_of_cost_lane_the_least_recently_released_is_evicted() -> None:
    """All lanes hold other histories: LRU, whatever their size (a big one-shot prompt's cache ages out)."""
    big_one_shot = list(range(5000, 7000))
    pool = _pool_with([[*SYSTEM, *_turn(0, 0)], big_one_shot, [*SYSTEM, *_turn(1, 0)]], release_order=[1, 0, 2])
    lease = pool.acquire([*SYSTEM, *_turn(2, 0)])
    assert lease.lane == 1
    assert (lease.keep, lease.source) == (len(SYSTEM), 0)  # copied from the oldest lane holding it


def test_live_conversations_outlast_one_shot_long_prompts() -> None:
    """Two one-shot long prompts, then 7 conversations on 8 lanes (one more than the lanes left):
    the long prompts' caches go first, so from the second round on every turn finds its history."""
    pool = LanePool(8)
    for i in range(2):
        long = [50_000 + 3000 * i + t for t in range(2000)]
        lane, _, _ = pool.acquire(long)
        pool.release(lane, long)
    histories = [list(SYSTEM) for _ in range(7)]
    for turn in range(3):
        for c in range(7):
            prompt = histories[c] + _turn(c, 2 * turn)
            lease = pool.acquire(prompt)
            if turn:
                assert lease.keep == len(histories[c]), (turn, c)
            pool.release(lease.lane, prompt + _turn(c, 2 * turn + 1))
            histories[c] = prompt + _turn(c, 2 * turn + 1)


def test_a_longer_prefix_elsewhere_is_copied_into_the_chosen_lane() -> None:
    """A new conversation sharing a long system prompt keeps the cached history where it is and copies
    the shared prefix from it into an empty lane."""
    system = list(range(100, 100 + COPY_MIN_TOKENS + 8))
    history = [*system, 1, 2, 3, 4, 5, 6, 7, 8] * 3
    pool = LanePool(3)
    lane_a, _, _ = pool.acquire(history)
    pool.release(lane_a, history)
    lease = pool.acquire([*system, 50, 51])
    assert lease.lane != lane_a
    assert lease.source == lane_a
    assert lease.keep == len(system)
    assert pool.contents[lease.lane] == system
    assert pool.contents[lane_a] == history


def test_short_shared_prefixes_are_not_worth_a_copy() -> None:
    history = list(range(1, 31))
    pool = LanePool(2)
    lane_a, _, _ = pool.acquire(history)
    pool.release(lane_a, history)
    lease = pool.acquire([1, 2, 3, 40])
    assert lease.lane != lane_a
    assert lease.source is None
    assert lease.keep == 0


def test_a_busy_lane_can_be_the_copy_source() -> None:
    prompt = list(range(COPY_MIN_TOKENS + 10))
    pool = LanePool(2)
    busy, _, _ = pool.acquire(prompt)
    pool.hold(busy, prompt, len(prompt))  # what its KV holds once its prompt was read
    lease = pool.acquire([*prompt, 7])
    assert lease.lane != busy
    assert (lease.source, lease.keep) == (busy, len(prompt))


# Grid extent: only whole grid chunks a fresh read writes the same way are reused

G = 4


def test_reuse_stops_at_the_grid_extent_rounded_to_the_grid() -> None:
    pool = LanePool(1, grid=G)
    lane, _, _ = pool.acquire([999])
    history = list(range(30))
    pool.release(lane, history, 10)  # an extent off the grid (the engine's never are) is rounded too
    lane, keep, _ = pool.acquire([*history, 50, 51])
    assert keep == 8  # min(shared 30, extent 10) rounded down to the grid
    assert pool.contents[lane] == history[:8]
    assert pool.extents[lane] == 8


def test_a_shorter_shared_prefix_is_rounded_down_too() -> None:
    pool = LanePool(1, grid=G)
    lane, _, _ = pool.acquire([999])
    pool.release(lane, list(range(20)), 20)
    _, keep, _ = pool.acquire([*range(11), 77])
    assert keep == 8


def test_the_last_prompt_token_stays_to_decode_on_the_grid() -> None:
    pool = LanePool(1, grid=G)
    lane, _, _ = pool.acquire([999])
    pool.release(lane, list(range(16)), 16)
    _, keep, _ = pool.acquire(list(range(16)))  # the same prompt: its last grid chunk is read again
    assert keep == 12


def test_tokens_past_the_extent_cost_nothing_to_discard() -> None:
    """A lane whose tokens are mostly tail and output loses no reusable cache: taking it is free."""
    pool = LanePool(2, grid=G)
    lanes = [pool.acquire([999]).lane for _ in range(2)]
    pool.release(lanes[0], [])
    pool.release(lanes[1], list(range(100, 140)), 4)  # 4 reusable tokens, 36 past its extent
    lane, keep, _ = pool.acquire([*range(100, 104), 5, 6, 7])
    assert (lane, keep) == (lanes[1], 4)


def test_a_copy_is_limited_to_the_source_extent() -> None:
    pool = LanePool(2, grid=G)
    busy, _, _ = pool.acquire([999])
    prompt = list(range(40))
    pool.hold(busy, prompt, 24)
    lease = pool.acquire([*prompt, 1])
    assert (lease.source, lease.keep) == (busy, 24)
    assert pool.extents[lease.lane] == 24


# Whole prompts: the same prompt again reuses all of it, with the logits of its last token


def test_a_whole_prompt_held_with_its_logits_is_reused_whole_by_the_same_prompt_only() -> None:
    pool = LanePool(2, grid=4)
    prompt = list(range(10))  # two grid chunks and a 2-token tail
    lane, _, _ = pool.acquire(prompt)
    logits = np.arange(5, dtype=np.float32)
    pool.hold_prompt(lane, prompt, logits)
    assert pool.reusable(lane, prompt) == 10 and pool.best_reuse(prompt) == 10
    assert pool.reusable(lane, [*prompt, 10]) == 8  # a longer prompt: whole grid chunks only
    assert pool.reusable(lane, prompt[:9]) == 8 and pool.reusable(lane, [*prompt[:9], 77]) == 8
    pool.release(lane, [*prompt, 50, 51], 8)  # the answer after it does not spoil it
    assert pool.acquire(prompt) == (lane, 10, None)
    assert pool.whole_prompt_logits(lane) is logits


def test_a_whole_prompt_is_copied_with_its_logits_and_forgotten_once_its_lane_changes() -> None:
    pool = LanePool(3, grid=4)
    prompt = list(range(12))
    busy, _, _ = pool.acquire(prompt)
    logits = np.ones(3, dtype=np.float32)
    pool.hold_prompt(busy, prompt, logits)  # still busy, decoding: its prompt can be copied
    lane, keep, source = pool.acquire(prompt)
    assert (keep, source) == (12, busy) and lane != busy
    assert pool.whole_prompt_logits(lane) is logits
    pool.release(lane, [*prompt[:8], 99], 8)  # the lane no longer holds the whole prompt
    assert pool.whole_prompt_logits(lane) is None and pool.reusable(lane, prompt) == 8
    pool.hold_prefill(busy, prompt, 4)  # a new read into the lane
    assert pool.whole_prompt_logits(busy) is None


@pytest.mark.parametrize(("tail", "rows"), [(1, 4), (4, 4), (5, 8), (60, 60), (61, 64), (63, 64)])
def test_a_tail_is_padded_to_whole_row_groups_or_a_whole_chunk(tail: int, rows: int) -> None:
    assert ROW_GROUP == 4
    assert tail_rows(tail, 64) == rows
