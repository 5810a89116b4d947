"""The real SmolLM2 model, loaded once per engine test module that needs it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from streamserve.llama import Model, load_model
from streamserve.models import resolve_model


@pytest.fixture(scope="module")
def model() -> Iterator[Model]:
    """SmolLM2 loaded with the CPU kernels the probe finds safe here (AMX can segfault)."""
    _, path = resolve_model("smollm2-135m-instruct")
    with load_model(path) as loaded:
        yield loaded
