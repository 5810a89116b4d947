"""Fixtures of the soak tests: the bench tests' fake OpenAI-style server, one per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.bench.fakeserver import running_fake_server


@pytest.fixture(scope="module")
def fake_url() -> Iterator[str]:
    """The base URL (ending in /v1) of a fake, partly misbehaving server on 127.0.0.1."""
    with running_fake_server() as url:
        yield url
