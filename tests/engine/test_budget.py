"""PrefillBudget: the prompt chunk that keeps a mixed step within `stall` times a decode-only step."""

from __future__ import annotations

from streamserve.engine.budget import PrefillBudget


def test_initial_guess_before_any_measurement() -> None:
    assert PrefillBudget(2.0, initial=32).tokens(4) == 32
    assert PrefillBudget(2.0, initial=32).tokens(0) == 32


def test_with_nothing_decoding_a_step_is_bounded_in_time_not_only_by_the_batch() -> None:
    """A long prompt read alone still comes in steps of about ``step_time``, so a request arriving
    meanwhile waits about one step, not the whole prompt (or a whole 512-token batch)."""
    budget = PrefillBudget(2.0, step_time=0.25, floor=8, ceiling=512)
    budget.observe(0, 100, 1.0)  # 10 ms per prompt token (a long prompt late in its context)
    assert budget.tokens(0) == 25
    cheap = PrefillBudget(2.0, step_time=0.25, floor=8, ceiling=512)
    cheap.observe(0, 100, 0.01)  # 0.1 ms per token: the batch size is the limit
    assert cheap.tokens(0) == 512


def test_prompt_only_steps_learn_the_per_token_cost_net_of_the_step_overhead() -> None:
    budget = PrefillBudget(2.0, step_time=0.25, floor=1, ceiling=512)
    budget.observe(1, 0, 0.010)  # a 1-token step: 10 ms of fixed overhead
    for _ in range(30):
        budget.observe(0, 40, 0.210)  # 40 prompt tokens: 10 ms + 40 x 5 ms
    assert budget.overhead() == 0.010
    assert 47 <= budget.tokens(0) <= 49  # (250 - 10) / 5


def test_an_overloaded_machine_does_not_shrink_steps_into_a_spiral() -> None:
    """When a step's fixed cost alone exceeds step_time (threads fighting for 2 busy cores, every step
    seconds long whatever its size), smaller steps would only read fewer tokens in the same time."""
    budget = PrefillBudget(2.0, step_time=0.25, floor=8, ceiling=512)
    budget.observe(1, 0, 3.0)  # 3 s for one token
    for _ in range(30):
        budget.observe(0, budget.tokens(0), 3.0 + 0.005 * budget.tokens(0))
    assert budget.tokens(0) >= 512 // 2  # prompt tokens may take as long as the overhead: 3 s / 5 ms


def test_time_bound_follows_the_machine_load() -> None:
    """Per-token cost is measured in wall time: on a loaded machine the same step_time holds fewer tokens."""
    budget = PrefillBudget(2.0, step_time=0.25, floor=1, ceiling=512)
    for _ in range(30):
        budget.observe(0, 50, 0.1)  # 2 ms per token
    quiet = budget.tokens(0)
    for _ in range(30):
        budget.observe(0, 50, 0.5)  # 10 ms per token
    assert (quiet, budget.tokens(0)) == (125, 25)


def test_time_bound_also_caps_steps_beside_decoding_streams() -> None:
    """With a large stall allowance the step time is the tighter bound."""
    budget = PrefillBudget(100.0, step_time=0.25, floor=1, ceiling=512)
    for _ in range(20):
        budget.observe(4, 0, 0.050)  # decode-only: 50 ms
        budget.observe(4, 20, 0.250)  # 10 ms per prompt token
    # stall alone would allow 99 * 50 / 10 = 495; the step time allows (250 - 50) / 10 = 20.
    assert 19 <= budget.tokens(4) <= 21


def test_budget_follows_measured_costs() -> None:
    budget = PrefillBudget(2.0, floor=1, ceiling=512)
    for _ in range(20):
        budget.observe(8, 0, 0.040)  # decode-only step: 40 ms
        budget.observe(8, 20, 0.100)  # 20 prompt tokens add 60 ms: 3 ms per token
    # (2 - 1) * 40 ms / 3 ms per token
    assert 12 <= budget.tokens(8) <= 14
    # a bigger stall allows proportionally more
    budget.stall = 3.0
    assert 25 <= budget.tokens(8) <= 28


def test_decode_time_scales_from_the_nearest_size_seen() -> None:
    budget = PrefillBudget(2.0)
    budget.observe(4, 0, 0.020)
    assert budget.decode_time(4) == 0.020
    assert abs((budget.decode_time(8) or 0) - 0.040) < 1e-9
    assert PrefillBudget(2.0).decode_time(3) is None


def test_floor_and_ceiling_bound_the_budget() -> None:
    budget = PrefillBudget(2.0, floor=8, ceiling=64)
    for _ in range(10):
        budget.observe(1, 0, 0.001)
        budget.observe(1, 100, 1.0)
    assert budget.tokens(1) == 8
    cheap = PrefillBudget(2.0, floor=8, ceiling=64)
    for _ in range(10):
        cheap.observe(16, 0, 1.0)
        cheap.observe(16, 100, 1.01)
    assert cheap.tokens(16) == 64


def test_outlier_moves_the_average_only_partly() -> None:
    budget = PrefillBudget(2.0, floor=1, ceiling=512)
    for _ in range(20):
        budget.observe(8, 0, 0.040)
    budget.observe(8, 0, 4.0)
    assert (budget.decode_time(8) or 0) < 1.0
