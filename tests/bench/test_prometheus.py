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
        'streamserve:time_to_first_token_seconds_bucket{le="+Inf"}': 3.0,  # the total over models
        "process_start_time_seconds": 1.7e9,
    }
    assert parse_metrics("") == {}


def test_a_model_name_label_also_adds_to_the_servers_total() -> None:
    page = 'a{model_name="x"} 1\na{model_name="y"} 2\nb{model_name="x",phase="w"} 3\nb{phase="w",model_name="y"} 4\n'
    values = parse_metrics(page)
    assert values["a"] == 3.0 and values['b{phase="w"}'] == 7.0 and values['a{model_name="y"}'] == 2.0
