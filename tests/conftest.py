"""Settings for the whole test session, applied before llama.cpp is loaded."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.pgcluster import Cluster, running_cluster

# llama.cpp's OpenMP threads spin between parallel sections by default: right for a server alone on its
# cores, ruinous when test servers share two cores with each other and with the tests (steps 10-100x
# slower). Tests check behaviour, not speed (benchmarks/ measure that, with the default policy), so their
# servers and in-process models wait passively. Set OMP_WAIT_POLICY yourself to override.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    """One throwaway PostgreSQL cluster for the session (tests make their own databases in it)."""
    with running_cluster() as cluster:
        yield cluster
