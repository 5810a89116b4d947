"""ServerConfig: validation, and the per-request sequence cap derived from the engine's lanes and queue."""

from __future__ import annotations

import pytest

from streamserve.config import ServerConfig
from streamserve.engine import EngineConfig
from streamserve.models import build_catalog

MODELS = build_catalog(["m"])


def test_sequences_per_request_is_the_cap_within_lanes_plus_queue() -> None:
    engine = EngineConfig()
    assert ServerConfig(models=MODELS).sequences_per_request(engine) == 16  # 8 lanes + 64 queued hold more
    small = EngineConfig(parallel=1, max_queue=0)
    assert ServerConfig(models=MODELS).sequences_per_request(small) == 1  # more could never fit
    assert ServerConfig(models=MODELS, max_request_sequences=100).sequences_per_request(engine) == 72


@pytest.mark.parametrize("field", ["max_n", "max_request_sequences"])
def test_caps_below_one_raise(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        ServerConfig(models=MODELS, **{field: 0})
