"""EngineConfig: defaults, validation by raising ValueError, immutability."""

from __future__ import annotations

import dataclasses
import math

import pytest

from streamserve.engine import EngineConfig
from streamserve.engine.budget import PrefillBudget

SIZES = ["max_num_seqs", "max_model_len", "n_threads", "max_num_batched_tokens"]


def test_defaults_are_valid_and_consistent() -> None:
    config = EngineConfig()
    assert config.max_num_seqs >= 1
    assert config.max_model_len >= 1
    assert config.n_threads >= 1
    assert config.max_queue >= 0
    assert config.max_num_batched_tokens >= config.max_num_seqs
    assert config.prefill_stall > 1.0


@pytest.mark.parametrize("name", SIZES)
@pytest.mark.parametrize("value", [0, -1])
def test_sizes_below_one_raise(name: str, value: int) -> None:
    with pytest.raises(ValueError, match=name):
        EngineConfig(**{name: value})


@pytest.mark.parametrize("name", SIZES)
def test_size_of_one_is_accepted(name: str) -> None:
    kwargs = {name: 1}
    if name == "max_num_batched_tokens":
        kwargs.update(max_num_seqs=1, prompt_grid=1)
    assert getattr(EngineConfig(**kwargs), name) == 1


def test_max_queue_zero_is_accepted_negative_raises() -> None:
    assert EngineConfig(max_queue=0).max_queue == 0
    with pytest.raises(ValueError, match="max_queue"):
        EngineConfig(max_queue=-1)


def test_max_num_batched_tokens_must_hold_one_decode_token_per_lane() -> None:
    assert EngineConfig(max_num_seqs=8, max_num_batched_tokens=8, prompt_grid=1).max_num_batched_tokens == 8
    with pytest.raises(ValueError, match="max_num_batched_tokens"):
        EngineConfig(max_num_seqs=8, max_num_batched_tokens=7, prompt_grid=1)


def test_max_num_batched_tokens_must_hold_a_grid_chunk_beside_the_decode_tokens() -> None:
    assert EngineConfig(max_num_seqs=8, max_num_batched_tokens=71).prompt_grid == 64
    with pytest.raises(ValueError, match="prompt_grid"):
        EngineConfig(max_num_seqs=8, max_num_batched_tokens=70)
    with pytest.raises(ValueError, match="prompt_grid"):
        EngineConfig(prompt_grid=0)


def test_deterministic_is_off_by_default() -> None:
    assert EngineConfig().deterministic is False
    assert EngineConfig(deterministic=True).deterministic is True


@pytest.mark.parametrize("value", [1.0, 0.5, 0.0, -2.0])
def test_prefill_stall_must_be_above_one(value: float) -> None:
    with pytest.raises(ValueError, match="prefill_stall"):
        EngineConfig(prefill_stall=value)


def test_prefill_stall_above_one_is_accepted() -> None:
    assert EngineConfig(prefill_stall=1.01).prefill_stall == 1.01
    assert EngineConfig(prefill_stall=10).prefill_stall == 10


def test_nan_prefill_stall_is_rejected() -> None:
    """NaN passes ``<= 1.0``; the engine then fails every sequence at the first mixed step."""
    with pytest.raises(ValueError, match="prefill_stall"):
        EngineConfig(prefill_stall=math.nan)


def test_infinite_prefill_stall_is_rejected_or_means_unlimited() -> None:
    """``--prefill-stall inf`` must either be refused up front or give prompts the whole batch."""
    try:
        config = EngineConfig(prefill_stall=math.inf, max_num_batched_tokens=64)
    except ValueError:
        return
    budget = PrefillBudget(config.prefill_stall, ceiling=config.max_num_batched_tokens)
    for _ in range(3):
        budget.observe(4, 0, 0.02)
        budget.observe(4, 10, 0.05)
    assert budget.tokens(4) == 64  # raises OverflowError today: int(inf)


@pytest.mark.parametrize("value", [0.0, -0.1, math.nan, math.inf])
def test_prefill_step_time_must_be_a_positive_finite_number(value: float) -> None:
    with pytest.raises(ValueError, match="prefill_step_time"):
        EngineConfig(prefill_step_time=value)


def test_config_is_frozen() -> None:
    config = EngineConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.max_num_seqs = 2  # type: ignore[misc]


def test_replace_revalidates() -> None:
    config = EngineConfig(max_num_seqs=2, max_num_batched_tokens=16, prompt_grid=8)
    assert dataclasses.replace(config, max_num_seqs=4).max_num_seqs == 4
    with pytest.raises(ValueError):
        dataclasses.replace(config, max_num_seqs=32)
