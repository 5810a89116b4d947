"""EngineConfig: defaults, validation by raising ValueError, immutability."""

from __future__ import annotations

import dataclasses

import pytest

from streamserve.engine import EngineConfig


def test_defaults_are_valid_and_consistent() -> None:
    config = EngineConfig()
    assert config.parallel >= 1
    assert config.ctx_size >= 1
    assert config.n_threads >= 1
    assert config.max_queue >= 0
    assert config.max_batch_tokens >= config.parallel
    assert config.prefill_chunk >= 1


@pytest.mark.parametrize("name", ["parallel", "ctx_size", "n_threads", "max_batch_tokens", "prefill_chunk"])
@pytest.mark.parametrize("value", [0, -1])
def test_sizes_below_one_raise(name: str, value: int) -> None:
    with pytest.raises(ValueError, match=name):
        EngineConfig(**{name: value})


@pytest.mark.parametrize("name", ["parallel", "ctx_size", "n_threads", "max_batch_tokens", "prefill_chunk"])
def test_size_of_one_is_accepted(name: str) -> None:
    kwargs = {name: 1}
    if name == "max_batch_tokens":
        kwargs["parallel"] = 1
    assert getattr(EngineConfig(**kwargs), name) == 1


def test_max_queue_zero_is_accepted_negative_raises() -> None:
    assert EngineConfig(max_queue=0).max_queue == 0
    with pytest.raises(ValueError, match="max_queue"):
        EngineConfig(max_queue=-1)


def test_max_batch_tokens_must_hold_one_decode_token_per_lane() -> None:
    assert EngineConfig(parallel=8, max_batch_tokens=8).max_batch_tokens == 8
    with pytest.raises(ValueError, match="max_batch_tokens"):
        EngineConfig(parallel=8, max_batch_tokens=7)


def test_config_is_frozen() -> None:
    config = EngineConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.parallel = 2  # type: ignore[misc]


def test_replace_revalidates() -> None:
    config = EngineConfig(parallel=2, max_batch_tokens=16)
    assert dataclasses.replace(config, parallel=4).parallel == 4
    with pytest.raises(ValueError):
        dataclasses.replace(config, parallel=32)
