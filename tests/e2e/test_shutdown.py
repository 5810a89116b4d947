"""Graceful shutdown on a real server: open streams end with an error event and [DONE], the process exits."""

from __future__ import annotations

import signal
import time

import httpx
import orjson
import pytest

from tests.serverproc import running_server

pytestmark = pytest.mark.e2e

# SmolLM2's <|endoftext|>, <|im_start|>, <|im_end|>: biased away so the stream outlives the signal.
NO_EOS = {"0": -100, "1": -100, "2": -100}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_ends_open_streams_cleanly_and_exits(sig: signal.Signals) -> None:
    with running_server("--parallel", "2") as server:
        body = {"model": "smollm2-135m-instruct", "prompt": "1, 2, 3, 4,", "max_tokens": 3000,
                "temperature": 0, "stream": True, "logit_bias": NO_EOS}
        events: list[bytes] = []
        with httpx.stream("POST", server.base_url + "/completions", json=body, timeout=60) as response:
            assert response.status_code == 200
            lines = response.iter_lines()
            for line in lines:
                if line.startswith("data: ") and '"text"' in line:
                    break
            server.process.send_signal(sig)
            events = [line.encode() for line in lines if line]
        assert events[-1] == b"data: [DONE]"
        error = orjson.loads(events[-2].removeprefix(b"data: "))
        assert "shutting down" in error["error"]["message"]
        assert "choices" not in error
        deadline = time.monotonic() + 30
        while server.process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        # uvicorn re-raises the captured signal once shut down: exiting "by" it is the clean outcome.
        assert server.process.returncode in (0, -sig, 128 + sig)
        log = server.log()
        assert "Finished server process" in log
        assert "Traceback" not in log
