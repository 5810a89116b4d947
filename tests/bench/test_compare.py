"""bench/compare.py through the CLI, against the fake server."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from matplotlib.image import imread

from streamserve.bench.cli import main

from .fakeserver import ANSWER_WORDS, MODEL


def test_compare_table_plot_and_json(fake_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, plot = tmp_path / "compare.json", tmp_path / "compare.png"
    argv = ["compare", "--base-url", fake_url, "--runs", "2", "--max-tokens", "12"]
    assert main([*argv, "--plot", str(plot), "--json-out", str(out)]) == 0

    data = orjson.loads(out.read_bytes())
    assert data["model"] == MODEL and len(data["runs"]) == 2
    for run in data["runs"]:
        plain, streamed = run["non_stream"], run["stream"]
        assert plain["ok"] and streamed["ok"]
        assert plain["text"] == streamed["text"] == "".join(ANSWER_WORDS[:12])
        assert plain["output_tokens"] == streamed["output_tokens"] == 12
        assert 0 < streamed["ttft"] < streamed["last_token"] <= streamed["e2e"]
        assert plain["ttft"] is None and not plain["chunk_times"]
    summary = data["summary"]
    assert summary["texts_equal"] == summary["pairs"] == 2 and summary["token_source"] == "usage"
    assert summary["stream_ttft"] < summary["stream_e2e"]

    image = imread(str(plot))
    assert image.shape[0] > 100 and image.shape[1] > 100
    printed = capsys.readouterr().out
    assert "streamed: first token (TTFT)" in printed and "non-streamed: complete answer" in printed
    assert "streamed text equals non-streamed text in 2 of 2 runs" in printed
    assert "from the server's usage" in printed


def test_compare_survives_failures(fake_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["compare", "--base-url", fake_url, "--model", MODEL, "--runs", "2", "--prompt", "[drop]"]
    assert main([*argv, "--plot", str(tmp_path / "c.png")]) == 1
    printed = capsys.readouterr().out
    assert "error x2: RemoteProtocolError" in printed  # the streamed half of each run
