"""The samples of a Prometheus text exposition (a server's ``/metrics`` page), by name and labels."""

from __future__ import annotations

import re

_METRIC_LINE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*(?:\{[^}]*\})?) (\S+)")


def parse_metrics(text: str) -> dict[str, float]:
    """Every sample of a Prometheus text exposition, keyed by name plus labels as written."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        match = _METRIC_LINE.match(line)
        if match and not line.startswith("#"):
            try:
                values[match.group(1)] = float(match.group(2))
            except ValueError:
                continue
    return values
