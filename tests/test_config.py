"""ServerConfig: validation, and the per-request sequence cap derived from the engine's lanes and queue."""

from __future__ import annotations

import pytest

from streamserve.config import ServerConfig
from streamserve.engine import EngineConfig


def test_sequences_per_request_is_the_cap_within_lanes_plus_queue() -> None:
    assert ServerConfig().sequences_per_request == 16  # 8 lanes + 64 queued hold more
    small = EngineConfig(max_num_seqs=1, max_queue=0)
    assert ServerConfig(engine=small).sequences_per_request == 1  # more could never fit
    assert ServerConfig(max_request_sequences=100).sequences_per_request == 72


@pytest.mark.parametrize("field", ["max_n", "max_request_sequences"])
def test_caps_below_one_raise(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        ServerConfig(**{field: 0})


def test_shutdown_timeout_may_be_zero_but_not_negative() -> None:
    assert ServerConfig(shutdown_timeout=0.0).shutdown_timeout == 0.0
    for value in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="shutdown_timeout"):
            ServerConfig(shutdown_timeout=value)


def test_log_level_is_one_the_server_knows() -> None:
    assert ServerConfig(log_level="debug").log_level == "debug"
    with pytest.raises(ValueError, match="log_level"):
        ServerConfig(log_level="loud")  # type: ignore[arg-type]


@pytest.mark.parametrize("field", ["store_ttl", "store_events_ttl", "store_sweep_interval"])
def test_store_durations_must_be_positive(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        ServerConfig(**{field: 0.0})
