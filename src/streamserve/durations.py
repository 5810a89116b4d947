"""Durations as every time flag takes them: a number with a unit (``500ms``, ``30s``, ``10m``, ``2h``, ``30d``).

One parser for ``streamserve serve`` and ``streamserve bench``, so that no flag counts in milliseconds
while another counts in seconds. A bare number is seconds. Imports nothing of the server.
"""

from __future__ import annotations

import math
import re

UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
"""Seconds in one of each unit, longest-named first where one name starts another (``ms`` before ``m``)."""

_DURATION = re.compile(r"(?P<number>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>ms|s|m|h|d)?")

FORMAT_HINT = "a number with a unit: 500ms, 30s, 10m, 2h or 30d (a bare number is seconds)"


def parse_duration(text: str) -> float:
    """Seconds from a duration such as ``500ms``, ``30s``, ``10m``, ``2h``, ``30d`` or ``90`` (seconds).

    Raises ValueError, naming the accepted format, for anything else: a negative number, a missing
    number, an unknown unit, ``nan`` or ``inf``. Zero is a duration; a caller that needs more says so.
    """
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None:
        raise ValueError(f"invalid duration {text!r}: expected {FORMAT_HINT}")
    seconds = float(match["number"]) * UNITS[match["unit"] or "s"]
    if not math.isfinite(seconds):
        raise ValueError(f"invalid duration {text!r}: too large")
    return seconds


def format_duration(seconds: float) -> str:
    """``seconds`` in the largest unit that counts it whole (``30d``, ``10m``, ``500ms``), else in seconds.

    ``parse_duration`` reads it back. Used for the defaults ``--help`` shows, in the format the flags take.
    """
    if seconds < 0 or not math.isfinite(seconds):
        raise ValueError(f"a duration is a finite number of seconds, at least 0; got {seconds}")
    for unit in ("d", "h", "m", "s", "ms"):
        count = seconds / UNITS[unit]
        if count >= 1 and abs(count - round(count)) < 1e-9:
            return f"{round(count)}{unit}"
    return f"{seconds:g}s"
