"""bench/prometheus.py: every sample of a /metrics page, labels kept as written, comments and junk skipped."""

from __future__ import annotations

from streamserve.bench.prometheus import parse_metrics

PAGE = """# HELP streamserve:lanes KV lanes.
# TYPE streamserve:lanes gauge
streamserve:lanes 8.0
streamserve:aborted_sequences_total{phase="decode"} 12.0
streamserve:time_to_first_token_seconds_bucket{le="+Inf",model_name="m"} 3
process_start_time_seconds 1.7e+09
broken_sample not-a-number
"""


def test_samples_by_name_and_labels() -> None:
    assert parse_metrics(PAGE) == {
        "streamserve:lanes": 8.0,
        'streamserve:aborted_sequences_total{phase="decode"}': 12.0,
        'streamserve:time_to_first_token_seconds_bucket{le="+Inf",model_name="m"}': 3.0,
        "process_start_time_seconds": 1.7e9,
    }
    assert parse_metrics("") == {}
