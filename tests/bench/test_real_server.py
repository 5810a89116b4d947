"""``bench compare`` and ``bench load`` against a real streamserve on 127.0.0.1, default model.

The reports must agree with what the server served: TTFT before the end of every request, token
counts equal to the server's usage (and exactly max_tokens when it says ``length``), streamed text
equal to non-streamed at temperature 0, a readable PNG, parseable ``--json-out``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from matplotlib.image import imread

from streamserve.bench.cli import main
from tests.serverproc import ServerProcess, running_server

pytestmark = pytest.mark.e2e

MAX_TOKENS = 16


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    """One real server, default model, for the whole module."""
    with running_server() as process:
        yield process


def _check_streamed(request: dict[str, Any]) -> None:
    assert request["ok"], request["error"]
    assert request["saw_done"]
    assert 0 < request["ttft"] <= request["last_token"] < request["e2e"]
    assert request["token_source"] == "usage"
    assert request["output_tokens"] == request["usage_completion_tokens"]
    assert 1 <= request["content_chunks"] <= request["output_tokens"] <= MAX_TOKENS
    if request["finish_reason"] == "length":
        assert request["output_tokens"] == MAX_TOKENS


def test_compare(server: ServerProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, plot = tmp_path / "compare.json", tmp_path / "compare.png"
    argv = ["compare", "--base-url", server.base_url, "--runs", "2", "--max-tokens", str(MAX_TOKENS)]
    assert main([*argv, "--temperature", "0", "--json-out", str(out), "--plot", str(plot)]) == 0

    data = orjson.loads(out.read_bytes())
    assert len(data["runs"]) == 2
    for run in data["runs"]:
        plain, streamed = run["non_stream"], run["stream"]
        _check_streamed(streamed)
        assert plain["ok"], plain["error"]
        assert plain["token_source"] == "usage"
        assert streamed["text"] == plain["text"]
        assert streamed["output_tokens"] == plain["output_tokens"]
        assert streamed["finish_reason"] == plain["finish_reason"]
        assert streamed["ttft"] < plain["e2e"]
    image = imread(str(plot))
    assert image.shape[0] > 100 and image.shape[1] > 100
    assert "streamed text equals non-streamed text in 2 of 2 runs" in capsys.readouterr().out


def test_load(server: ServerProcess, tmp_path: Path) -> None:
    out, plot = tmp_path / "load.json", tmp_path / "load.png"
    argv = ["load", "--base-url", server.base_url, "--concurrency", "1,2", "--requests", "4"]
    argv += ["--max-tokens", str(MAX_TOKENS), "--json-out", str(out), "--plot", str(plot)]
    assert main(argv) == 0

    data = orjson.loads(out.read_bytes())
    assert [level["concurrency"] for level in data["levels"]] == [1, 2]
    for level in data["levels"]:
        summary = level["summary"]
        assert (summary["completed"], summary["errors"], summary["not_sent"]) == (4, 0, 0)
        assert summary["token_source"] == "usage"
        assert summary["output_tokens"] == sum(r["output_tokens"] for r in level["requests"])
        assert summary["ttft_p99"] < summary["e2e_p99"]
        for request in level["requests"]:
            _check_streamed(request)
    assert imread(str(plot)).ndim == 3


def test_load_without_usage_counts_chunks(server: ServerProcess, tmp_path: Path) -> None:
    out, prompts = tmp_path / "no-usage.json", tmp_path / "count.jsonl"
    prompts.write_text('{"name": "count", "prompt": "1, 2, 3, 4, 5, 6, 7, 8,"}\n', encoding="utf-8")
    argv = ["load", "--base-url", server.base_url, "--concurrency", "2", "--requests", "2", "--warmup", "0"]
    argv += ["--max-tokens", str(MAX_TOKENS), "--no-usage", "--endpoint", "completions"]
    assert main([*argv, "--prompts", str(prompts), "--json-out", str(out)]) == 0
    (level,) = orjson.loads(out.read_bytes())["levels"]
    assert level["summary"]["completed"] == 2 and level["summary"]["token_source"] == "chunks"
    for request in level["requests"]:
        assert request["usage_completion_tokens"] is None
        assert 1 <= request["output_tokens"] == request["content_chunks"] <= MAX_TOKENS
        assert 0 < request["ttft"] < request["e2e"]


def test_load_on_the_responses_api(server: ServerProcess, tmp_path: Path) -> None:
    out = tmp_path / "responses.json"
    argv = ["load", "--base-url", server.base_url, "--concurrency", "1,2", "--requests", "2", "--warmup", "0"]
    argv += ["--max-tokens", str(MAX_TOKENS), "--endpoint", "responses", "--json-out", str(out)]
    assert main(argv) == 0
    data = orjson.loads(out.read_bytes())
    assert data["endpoint"] == "responses"
    for level in data["levels"]:
        assert level["summary"]["completed"] == 2 and level["summary"]["token_source"] == "usage"
        for request in level["requests"]:
            assert request["ok"], request["error"]
            assert not request["saw_done"]  # a Responses stream has no [DONE]
            assert 0 < request["ttft"] <= request["last_token"] < request["e2e"]
            assert request["finish_reason"] in ("stop", "length") and request["text"]
            assert 1 <= request["content_chunks"] <= request["output_tokens"] <= MAX_TOKENS
            if request["finish_reason"] == "length":
                assert request["output_tokens"] == MAX_TOKENS
