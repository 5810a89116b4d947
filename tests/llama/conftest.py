"""The real SmolLM2 model, loaded once for the llama/ tests that need it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from streamserve.llama import Model, load_model
from streamserve.models import resolve_model


@pytest.fixture(scope="package")
def smollm2() -> Iterator[Model]:
    _, path = resolve_model("smollm2-135m-instruct")
    with load_model(path) as loaded:
        yield loaded
