"""The samples of a Prometheus text exposition (a server's ``/metrics`` page), by name and labels."""

from __future__ import annotations

import re

_METRIC_LINE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*(?:\{[^}]*\})?) (\S+)")


def parse_metrics(text: str) -> dict[str, float]:
    """Every sample of a Prometheus text exposition, keyed by name plus labels as written; a sample labelled
    ``model_name`` also adds to the same key without that label (the server's total over its models)."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        match = _METRIC_LINE.match(line)
        if match and not line.startswith("#"):
            try:
                value = float(match.group(2))
            except ValueError:
                continue
            key = match.group(1)
            values[key] = value
            total = _MODEL_LABEL.sub("", key).replace("{,", "{").replace(",}", "}").replace("{}", "")
            if total != key:
                values[total] = values.get(total, 0.0) + value
    return values


_MODEL_LABEL = re.compile(r'model_name="(?:[^"\\]|\\.)*",?')
