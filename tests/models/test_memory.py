"""Sizes and the default budget."""

from __future__ import annotations

import pytest

from streamserve.models import default_budget, parse_size, resident_memory
from streamserve.models.memory import available_memory


@pytest.mark.parametrize(("text", "size"), [("8GiB", 8 * 2**30), ("512MiB", 512 * 2**20), ("1.5G", 1_500_000_000),
                                            ("2gb", 2_000_000_000), ("1048576", 2**20), (" 100 MB ", 100_000_000)])
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "big", "8XB", "-1G", "0"])
def test_bad_sizes(text: str) -> None:
    with pytest.raises(ValueError):
        parse_size(text)


def test_the_default_budget_is_a_share_of_what_is_available_and_rss_is_read() -> None:
    assert 0 < default_budget() < available_memory()
    assert resident_memory() > 10 * 2**20
