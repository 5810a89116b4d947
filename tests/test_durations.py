"""The one duration format of every time flag: a number with a unit, a bare number being seconds."""

from __future__ import annotations

import pytest

from streamserve.durations import format_duration, parse_duration


@pytest.mark.parametrize(("text", "seconds"), [
    ("500ms", 0.5), ("30s", 30.0), ("10m", 600.0), ("2h", 7200.0), ("30d", 2_592_000.0),
    ("90", 90.0), ("0", 0.0), ("1.5s", 1.5), (".5h", 1800.0), ("0.25", 0.25), (" 10M ", 600.0), ("3 s", 3.0),
])
def test_units_and_bare_seconds(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds, rel=1e-12)


@pytest.mark.parametrize("text", ["", "s", "-1", "-5s", "10x", "5 minutes", "1e3", "inf", "nan", "1,5s", "ms10",
                                  "1" + "0" * 400 + "d"])
def test_anything_else_is_refused_naming_the_format(text: str) -> None:
    with pytest.raises(ValueError, match=r"invalid duration .*"):
        parse_duration(text)


@pytest.mark.parametrize(("seconds", "text"), [
    (2_592_000.0, "30d"), (7200.0, "2h"), (600.0, "10m"), (60.0, "1m"), (30.0, "30s"), (0.5, "500ms"),
    (1.5, "1500ms"), (0.0, "0s"), (0.0015, "0.0015s"), (90.0, "90s"),
])
def test_format_uses_the_largest_whole_unit_and_reads_back(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == pytest.approx(seconds, rel=1e-12)


@pytest.mark.parametrize("seconds", [-1.0, float("inf"), float("nan")])
def test_format_refuses_what_is_no_duration(seconds: float) -> None:
    with pytest.raises(ValueError):
        format_duration(seconds)
