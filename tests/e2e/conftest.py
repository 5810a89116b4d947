"""Session fixtures for the end-to-end tests: one real, keyless server on the default model.

The server answers to ``gpt-4o-mini`` as an alias (``--served-model-name``), so the notebook's code runs
unchanged against it with any API key. Modules that need other flags (``--api-key``, ``--max-model-len``,
``--max-num-seqs 1``, ``--model gemma-3-270m``) start their own module-scoped server.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from openai import OpenAI

from tests.e2e.ssewire import MODEL
from tests.serverproc import ServerProcess, running_server

SERVED_NAMES = f"smollm2-135m-instruct,{MODEL}"
API_KEY = "sk-test"
TIMEOUT_S = 120.0


@pytest.fixture(scope="session")
def server() -> Iterator[ServerProcess]:
    """The default model, keyless, with the notebook's model name as an alias."""
    with running_server("--served-model-name", SERVED_NAMES) as process:
        yield process


@pytest.fixture(scope="session")
def client(server: ServerProcess) -> Iterator[OpenAI]:
    """The official client against the session server; no retries, so every status is seen as sent."""
    with OpenAI(base_url=server.base_url, api_key=API_KEY, max_retries=0, timeout=TIMEOUT_S) as openai_client:
        yield openai_client


@pytest.fixture(scope="session")
def http(server: ServerProcess) -> Iterator[httpx.Client]:
    """A raw httpx client on the session server's /v1, for byte-level wire checks."""
    with httpx.Client(base_url=server.base_url, timeout=TIMEOUT_S) as raw:
        yield raw
