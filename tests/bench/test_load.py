"""bench/load.py through the CLI, against the fake server: errors are counted and the run ends."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from matplotlib.image import imread

from streamserve.bench.cli import main

from .fakeserver import MODEL

MIXED: list[dict[str, Any]] = [
    {"name": "ok", "messages": [{"role": "user", "content": "hello"}]},
    {"name": "no-usage", "messages": [{"role": "user", "content": "hello [no-usage]"}]},
    {"name": "http-500", "messages": [{"role": "user", "content": "[error-500]"}]},
    {"name": "drop", "messages": [{"role": "user", "content": "[drop]"}]},
    {"name": "error-event", "prompt": "[error-event]"},
    {"name": "interrupted", "prompt": "[interrupted]"},
]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"\n".join(orjson.dumps(row) for row in rows) + b"\n")
    return path


def test_load_counts_errors_and_reports_token_sources(
    fake_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prompts = write_jsonl(tmp_path / "mixed.jsonl", MIXED)
    out, plot = tmp_path / "load.json", tmp_path / "load.png"
    argv = ["load", "--base-url", fake_url, "--prompts", str(prompts), "--concurrency", "1,3"]
    argv += ["--requests", "12", "--max-tokens", "10", "--warmup", "1", "--timeout", "10"]
    assert main([*argv, "--json-out", str(out), "--plot", str(plot)]) == 0

    data = orjson.loads(out.read_bytes())
    assert data["model"] == MODEL and [lv["concurrency"] for lv in data["levels"]] == [1, 3]
    for level in data["levels"]:
        summary, requests = level["summary"], level["requests"]
        assert len(requests) == 12
        assert (summary["completed"], summary["errors"], summary["not_sent"]) == (4, 8, 0)
        assert summary["token_source"] == "mixed" and summary["output_tokens"] == 2 * 10 + 2 * 9
        by_name: dict[str, list[dict[str, Any]]] = {}
        for request in requests:
            by_name.setdefault(request["prompt"], []).append(request)
        for request in by_name["ok"]:
            assert request["ok"] and request["token_source"] == "usage" and request["output_tokens"] == 10
        for request in by_name["no-usage"]:
            assert request["ok"] and request["token_source"] == "chunks" and request["output_tokens"] == 9
        for request in requests:
            if request["ok"]:
                assert 0 < request["ttft"] <= request["last_token"] < request["e2e"]
                assert len(request["chunk_times"]) == request["content_chunks"]
        assert all("HTTP 500" in r["error"] for r in by_name["http-500"])
        assert all("RemoteProtocolError" in r["error"] for r in by_name["drop"])
        assert all(r["error"].startswith("error event:") for r in by_name["error-event"])
        assert all("without a finish_reason" in r["error"] for r in by_name["interrupted"])
        assert summary["ttft_p50"] <= summary["ttft_p99"] <= summary["e2e_p99"]
        assert summary["output_tokens_per_s"] > 0 and summary["requests_per_s"] > 0

    assert imread(str(plot)).shape[2] in (3, 4)
    printed = capsys.readouterr().out
    assert "load sweep" in printed and "TTFT p99" in printed
    assert "from usage where the server sent it, else counted chunks" in printed
    assert "error x4: HTTP 500: server_error: the fake server failed" in printed


def test_load_is_bounded_in_seconds(fake_url: str, tmp_path: Path) -> None:
    prompts = write_jsonl(tmp_path / "slow.jsonl", [{"prompt": "[slow]"}])
    out = tmp_path / "slow.json"
    argv = ["load", "--base-url", fake_url, "--model", MODEL, "--prompts", str(prompts), "--concurrency", "2"]
    argv += ["--requests", "1000", "--duration", "1", "--timeout", "0.4", "--warmup", "0"]
    started = time.monotonic()
    assert main([*argv, "--json-out", str(out)]) == 1  # nothing succeeded
    assert time.monotonic() - started < 10
    summary = orjson.loads(out.read_bytes())["levels"][0]["summary"]
    assert summary["completed"] == 0 and 2 <= summary["errors"] <= 12
    assert summary["errors"] + summary["not_sent"] == 1000


def test_load_with_builtin_prompts_on_completions(fake_url: str, tmp_path: Path) -> None:
    out = tmp_path / "builtin.json"
    argv = ["load", "--base-url", fake_url, "--endpoint", "completions", "--concurrency", "2"]
    argv += ["--requests", "6", "--max-tokens", "4", "--no-usage", "--json-out", str(out)]
    assert main(argv) == 0
    level = orjson.loads(out.read_bytes())["levels"][0]
    assert level["summary"]["completed"] == 6 and level["summary"]["token_source"] == "chunks"
    assert {r["prompt"] for r in level["requests"]} >= {"long", "chinese"}


def test_unreachable_server_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["load", "--base-url", "http://127.0.0.1:9/v1", "--requests", "1"]) == 2
    assert "bench:" in capsys.readouterr().out
